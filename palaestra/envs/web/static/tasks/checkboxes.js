// Checkboxes: tick exactly the named boxes (some start ticked), then submit. Success when every
// box's state matches at submit. Progress counts boxes set right beyond those right from the start.
palaestra.define({
  render(app, task) {
    const h = palaestra.h;
    const boxes = task.labels.map((label, i) => h("label", {},
      h("input", {type: "checkbox", checked: task.initial[i], "data-i": i}), label));
    app.append(h("div", {class: "card", style: {marginLeft: `${task.offset}px`, maxWidth: "340px"}},
      h("div", {style: {display: "grid", gridTemplateColumns: `repeat(${task.columns}, auto)`}}, boxes),
      h("button", {class: "primary", onclick: () => palaestra.finish(this.wrong().length === 0)}, task.button)));
  },
  boxes() {
    return [...document.querySelectorAll("#app input[type=checkbox]")];
  },
  wrong() {
    return this.boxes().filter((box) => box.checked !== palaestra.task.wanted[Number(box.dataset.i)]);
  },
  progress() {
    const task = palaestra.task;
    const right0 = task.initial.filter((on, i) => on === task.wanted[i]).length;
    const right = this.boxes().length - this.wrong().length;
    return Math.max(0, right - right0) / (task.labels.length - right0 + 1);
  },
  expert() {
    const wrong = this.wrong();
    return {op: "click", el: wrong.length ? wrong[0] : document.querySelector("#app button")};
  },
});
