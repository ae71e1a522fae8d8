// EnterText: one or two labelled text fields; type the exact text into the named one, then submit
// (with the button or Enter). Success when the named field holds exactly the text at submit.
palaestra.define({
  render(app, task) {
    const h = palaestra.h;
    const fields = task.labels.map((label, i) => h("label", {class: "field"}, h("span", {}, label),
      h("input", {type: "text", autocomplete: "off", placeholder: task.placeholders[i] || null, "data-label": label})));
    const form = h("form", {
      class: "card",
      novalidate: true,  // the task checks the values itself; no browser pop-ups
      style: {marginLeft: `${task.offset}px`, marginTop: `${task.top}px`, maxWidth: "330px"},
      onsubmit: (e) => { e.preventDefault(); this.submit(); },
    }, ...fields, h("button", {type: "submit", class: "primary"}, task.button));
    app.append(form);
  },
  field() {
    return [...document.querySelectorAll("#app input")].find((i) => i.dataset.label === palaestra.task.target);
  },
  submit() {
    palaestra.finish(this.field().value === palaestra.task.text);
  },
  progress() {
    return this.field().value === palaestra.task.text ? 0.5 : 0;
  },
  expert() {
    const field = this.field();
    if (field.value !== palaestra.task.text) return {op: "type", el: field, text: palaestra.task.text};
    return {op: "click", el: document.querySelector("#app button")};
  },
});
