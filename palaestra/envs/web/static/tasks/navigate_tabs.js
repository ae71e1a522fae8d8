// NavigateTabs: a tab list with one panel of buttons per tab; switch to the named tab and click the
// named button there. Clicking any other button (or the right label in the wrong tab) fails.
palaestra.define({
  render(app, task) {
    const h = palaestra.h;
    this.active = 0;
    this.tabs = task.tabs.map((name, i) => h("button", {
      role: "tab", id: `tab-${i}`, "aria-controls": "panel", onclick: () => this.select(i),
    }, name));
    this.panel = h("div", {role: "tabpanel", id: "panel", class: "card"});
    const list = h("div", {role: "tablist", class: "tabs", "aria-label": "Sections", onkeydown: (e) => {
      const step = {ArrowRight: 1, ArrowLeft: -1}[e.key];
      if (!step) return;
      this.select((this.active + step + this.tabs.length) % this.tabs.length);
      this.tabs[this.active].focus();
    }}, this.tabs);
    app.append(h("div", {style: {marginLeft: `${task.offset}px`}}, h("h2", {}, task.title), list, this.panel));
    this.select(0);
  },
  select(i) {
    const h = palaestra.h;
    const task = palaestra.task;
    this.active = i;
    this.tabs.forEach((tab, k) => {
      tab.setAttribute("aria-selected", String(k === i));
      tab.tabIndex = k === i ? 0 : -1;
    });
    this.panel.setAttribute("aria-labelledby", `tab-${i}`);
    this.panel.replaceChildren(h("h3", {}, task.tabs[i]),
      ...task.panels[i].map((label) => h("button", {
        onclick: () => palaestra.finish(i === task.target_tab && label === task.button),
      }, label)));
  },
  progress() {
    return this.active === palaestra.task.target_tab ? 0.5 : 0;
  },
  expert() {
    const task = palaestra.task;
    if (this.active !== task.target_tab) return {op: "click", el: this.tabs[task.target_tab]};
    return {op: "click", el: [...this.panel.querySelectorAll("button")].find((b) => b.textContent === task.button)};
  },
});
