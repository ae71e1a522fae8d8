// ClickSequence: click several buttons in the stated order. Each right click is listed under the
// buttons; a click out of order (or on a button not in the sequence) fails.
palaestra.define({
  render(app, task) {
    const h = palaestra.h;
    const log = h("ol", {id: "log", "aria-labelledby": "log-title"});
    const buttons = task.labels.map((label, i) => h("button", {
      style: task.layout === "row" ? {marginRight: `${task.offsets[i]}px`} : {marginLeft: `${task.offsets[i]}px`, display: "block"},
      onclick: () => {
        const k = log.children.length;
        if (task.order[k] !== label) return palaestra.finish(false);
        log.append(h("li", {}, label));
        if (k + 1 === task.order.length) palaestra.finish(true);
      },
    }, label));
    app.append(h("div", {class: task.layout === "row" ? "row" : ""}, buttons),
      h("p", {class: "muted", id: "log-title"}, "Clicked so far:"), log);
  },
  done() {
    return document.getElementById("log").children.length;
  },
  progress() {
    return this.done() / palaestra.task.order.length;
  },
  expert() {
    const next = palaestra.task.order[this.done()];
    return {op: "click", el: [...document.querySelectorAll("#app button")].find((b) => b.textContent === next)};
  },
});
