// ReadTable: a table of people or products; type the value of the asked cell into the answer field
// and submit. Exact match after trimming and collapsing whitespace.
// Re-typing a field: the runtime's GUI step selects the old text with Control+A before typing; once it
// is all selected (focused, selection spanning the value), erase it so the next step types afresh.
const retype = (el, text) => (document.activeElement === el && el.value && el.selectionStart === 0
  && el.selectionEnd === el.value.length ? {op: "press", key: "Backspace"} : {op: "type", el, text});
palaestra.define({
  render(app, task) {
    const h = palaestra.h;
    this.answer = h("input", {type: "text", id: "answer", autocomplete: "off",
      onkeydown: (e) => { if (e.key === "Enter") this.submit(); }});
    this.button = h("button", {class: "primary", onclick: () => this.submit()}, "Submit");
    const table = h("table", {},
      h("thead", {}, h("tr", {}, task.header.map((name) => h("th", {scope: "col"}, name)))),
      h("tbody", {}, task.rows.map((row) => h("tr", {}, row.map((cell, i) => h(i ? "td" : "th", i ? {} : {scope: "row"}, cell))))));
    app.append(h("div", {style: {marginLeft: `${task.offset}px`}}, table,
      h("div", {class: "row"}, h("label", {for: "answer", style: {display: "inline"}}, "Answer "), this.answer, this.button)));
  },
  norm(text) {
    return text.trim().replace(/\s+/g, " ");
  },
  submit() {
    palaestra.finish(this.norm(this.answer.value) === palaestra.task.answer);
  },
  progress() {
    return this.norm(this.answer.value) === palaestra.task.answer ? 0.5 : 0;
  },
  expert() {
    if (this.norm(this.answer.value) !== palaestra.task.answer) {
      return retype(this.answer, palaestra.task.answer);
    }
    return {op: "click", el: this.button};
  },
});
