// FillForm: a sign-up form of text, e-mail, number, drop-down and radio fields; the instruction gives
// the values of some of them. Success when every given value is in place at submit.
//
// Drop-downs are focused through their label text, never by a click on the list itself (that opens
// Chromium's pop-up, which swallows typed keys): see select_option.js.
palaestra.define({
  render(app, task) {
    const h = palaestra.h;
    this.popup = null;
    document.addEventListener("mousedown", () => { this.popup = null; });
    const rows = task.fields.map((field, i) => {
      const id = `f${i}`;
      if (field.kind === "radio") {
        return h("fieldset", {class: "field", style: {border: "none", padding: 0, margin: "4px 0"}},
          h("legend", {style: {float: "left", minWidth: "125px", padding: 0}}, field.label),
          h("div", {class: "row"}, field.options.map((option) => h("label", {style: {display: "inline", marginRight: "8px"}},
            h("input", {type: "radio", name: id, value: option}), option))));
      }
      let control;
      if (field.kind === "select") {
        control = h("select", {id}, h("option", {value: ""}, "Choose..."),
          field.options.map((option) => h("option", {value: option}, option)));
        control.addEventListener("mousedown", (e) => { this.popup = this.popup === id ? null : id; e.stopPropagation(); });
        for (const type of ["keydown", "change", "blur"]) control.addEventListener(type, () => { this.popup = null; });
      } else {
        control = h("input", {id, type: field.kind, autocomplete: "off"});
      }
      return h("label", {class: "field"}, h("span", {id: `${id}-label`, style: {minWidth: "125px"}}, field.label), control);
    });
    app.append(h("form", {
      class: "card",
      novalidate: true,  // the task checks the values itself; no browser pop-ups
      style: {marginLeft: `${task.offset}px`, maxWidth: "400px"},
      onsubmit: (e) => { e.preventDefault(); palaestra.finish(this.missing().length === 0); },
    }, h("h3", {}, task.title), rows, h("button", {type: "submit", class: "primary"}, task.button)));
  },
  value(i) {
    const field = palaestra.task.fields[i];
    if (field.kind !== "radio") return document.getElementById(`f${i}`).value;
    const checked = document.querySelector(`#app input[name=f${i}]:checked`);
    return checked ? checked.value : "";
  },
  missing() {
    return palaestra.task.fields.map((field, i) => i)
      .filter((i) => palaestra.task.fields[i].value !== null && this.value(i) !== palaestra.task.fields[i].value);
  },
  progress() {
    const total = palaestra.task.fields.filter((field) => field.value !== null).length;
    return (total - this.missing().length) / (total + 1);
  },
  expert() {
    const missing = this.missing();
    if (!missing.length) return {op: "click", el: document.querySelector("#app button[type=submit]")};
    const i = missing[0];
    const field = palaestra.task.fields[i];
    const el = document.getElementById(`f${i}`);
    if (field.kind === "radio") {
      return {op: "click", el: document.querySelector(`#app input[name=f${i}][value="${field.value}"]`)};
    }
    if (field.kind === "select") {
      // `tried`: the list kept its value after the last typed label (a pop-up we did not see open?)
      if (document.activeElement !== el || this.popup || el.dataset.tried === el.value) {
        delete el.dataset.tried;
        return {op: "click", el: document.getElementById(`f${i}-label`)};
      }
      el.dataset.tried = el.value;
      return {op: "select", el, text: field.value};
    }
    return {op: "type", el, text: field.value};
  },
});
