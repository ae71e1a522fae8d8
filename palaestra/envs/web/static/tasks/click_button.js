// ClickButton: several buttons; click the one named in the instruction. A wrong click fails.
palaestra.define({
  render(app, task) {
    const h = palaestra.h;
    task.labels.forEach((label, i) => {
      const button = h("button", {
        onclick: () => palaestra.finish(label === task.target),
        style: {marginLeft: `${task.offsets[i]}px`},
      }, label);
      app.append(h("div", {}, button));
    });
  },
  progress() {
    return 0;
  },
  expert() {
    const task = palaestra.task;
    const button = [...document.querySelectorAll("#app button")].find((b) => b.textContent === task.target);
    return {op: "click", el: button};
  },
});
