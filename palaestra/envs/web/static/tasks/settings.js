// Settings: toggle switches (role="switch" buttons) and a radio group; set the named switches and the
// named choice, then save. Success when all of them are as asked at save; Cancel fails. Progress counts
// the named settings set right beyond those right from the start.
palaestra.define({
  render(app, task) {
    const h = palaestra.h;
    const rows = task.switches.map((item, i) => {
      const toggle = h("button", {
        role: "switch", "aria-checked": String(item.on), "aria-labelledby": `s${i}-label`, "data-label": item.label,
        style: {position: "relative", width: "40px", height: "22px", padding: 0, borderRadius: "11px"},
        onclick: () => this.toggle(toggle),
      }, h("span", {"aria-hidden": "true", style: {position: "absolute", top: "2px", width: "16px", height: "16px",
        borderRadius: "8px", background: "#fff", border: "1px solid #8a8f98"}}));
      this.paint(toggle);
      const label = h("span", {id: `s${i}-label`, style: {flex: task.switch_first ? "1" : "none", minWidth: "150px"}}, item.label);
      return h("div", {class: "row", style: {justifyContent: "space-between", maxWidth: "300px"}},
        ...(task.switch_first ? [toggle, label] : [label, toggle]));
    });
    const radios = task.options.map((option) => h("label", {style: {display: "inline", marginRight: "10px"}},
      h("input", {type: "radio", name: "choice", value: option, checked: option === task.start}), option));
    app.append(h("div", {class: "card", style: {marginLeft: `${task.offset}px`, maxWidth: "340px"}},
      h("h3", {}, "Settings"), rows,
      h("fieldset", {style: {border: "none", padding: 0, margin: "6px 0"}}, h("legend", {style: {padding: 0}}, task.group), radios),
      h("button", {class: "primary", onclick: () => palaestra.finish(this.wrong().length === 0)}, task.button),
      h("button", {onclick: () => palaestra.finish(false)}, "Cancel")));
  },
  toggle(button) {
    button.setAttribute("aria-checked", String(button.getAttribute("aria-checked") !== "true"));
    this.paint(button);
  },
  paint(button) {
    const on = button.getAttribute("aria-checked") === "true";
    button.style.background = on ? "#2f6fde" : "#c5c9d0";
    button.firstChild.style.left = on ? "20px" : "2px";
  },
  // the named settings (switches, then the radio group) not yet as asked, as elements to click
  wrong() {
    const task = palaestra.task;
    const wrong = [...document.querySelectorAll("#app [role=switch]")].filter((toggle) =>
      toggle.dataset.label in task.wanted && (toggle.getAttribute("aria-checked") === "true") !== task.wanted[toggle.dataset.label]);
    const radio = document.querySelector(`#app input[name=choice][value="${task.target}"]`);
    return radio.checked ? wrong : [...wrong, radio];
  },
  progress() {
    const task = palaestra.task;
    const right0 = task.switches.filter((item) => item.label in task.wanted && task.wanted[item.label] === item.on).length;
    const total = Object.keys(task.wanted).length + 1;
    return Math.max(0, total - this.wrong().length - right0) / (total - right0 + 1);
  },
  expert() {
    const wrong = this.wrong();
    return {op: "click", el: wrong.length ? wrong[0] : document.querySelector("#app button.primary")};
  },
});
