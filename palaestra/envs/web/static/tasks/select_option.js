// SelectOption: a native drop-down list; choose the named option and submit. Success when the
// selected option is the named one at submit.
//
// Expert: a mouse click on a <select> opens Chromium's pop-up list, which takes the keyboard (key
// events never reach the page, so the page cannot tell what was typed into it). The expert therefore
// focuses the list through its label (a click there focuses it closed, and closes an open pop-up), then
// types the option's label, which a focused closed list matches against its options.
palaestra.define({
  render(app, task) {
    const h = palaestra.h;
    const select = h("select", {id: "choice"}, h("option", {value: ""}, task.placeholder),
      task.options.map((option) => h("option", {value: option}, option)));
    this.popup = false;
    const closed = () => { this.popup = false; };
    select.addEventListener("mousedown", (e) => { this.popup = !this.popup; e.stopPropagation(); });
    for (const type of ["keydown", "change", "blur"]) select.addEventListener(type, closed);
    document.addEventListener("mousedown", closed);
    app.append(h("div", {class: "card", style: {marginLeft: `${task.offset}px`, marginTop: `${task.top}px`, maxWidth: "300px"}},
      h("label", {class: "field"}, h("span", {id: "choice-label"}, task.label), select),
      h("button", {class: "primary", onclick: () => palaestra.finish(this.chosen())}, task.button)));
  },
  chosen() {
    return document.getElementById("choice").value === palaestra.task.target;
  },
  progress() {
    return this.chosen() ? 0.5 : 0;
  },
  expert() {
    const select = document.getElementById("choice");
    if (this.chosen()) return {op: "click", el: document.querySelector("#app button")};
    // `tried`: the list kept its value after the last typed label (a pop-up we did not see open?)
    if (document.activeElement !== select || this.popup || select.dataset.tried === select.value) {
      delete select.dataset.tried;
      return {op: "click", el: document.getElementById("choice-label")};
    }
    select.dataset.tried = select.value;
    return {op: "select", el: select, text: palaestra.task.target};
  },
});
