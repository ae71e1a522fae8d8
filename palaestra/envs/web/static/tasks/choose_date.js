// ChooseDate: a read-only date field that opens a calendar (month heading, previous/next month
// buttons, a grid of day buttons); pick the asked date, then submit. The field must hold it.
const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
  "October", "November", "December"];
const pad = (n) => String(n).padStart(2, "0");
const fmt = (y, m, d) => `${pad(m + 1)}/${pad(d)}/${y}`;

palaestra.define({
  render(app, task) {
    const h = palaestra.h;
    [this.year, this.month] = task.start;
    this.open = false;
    this.field = h("input", {type: "text", id: "date", readonly: true, placeholder: "MM/DD/YYYY",
      onclick: () => this.toggle(true)});
    this.toggleButton = h("button", {"aria-label": "Open calendar", "aria-haspopup": "dialog",
      onclick: () => this.toggle(!this.open)}, "▾");
    this.popup = h("div", {role: "dialog", "aria-label": "Choose date", class: "card", style: {maxWidth: "300px"}});
    this.submit = h("button", {class: "primary", onclick: () => palaestra.finish(this.field.value === this.goal())},
      "Submit");
    app.append(h("div", {style: {marginLeft: `${task.offset}px`}},
      h("div", {class: "row"}, h("label", {for: "date", style: {display: "inline"}}, task.label), this.field,
        this.toggleButton),
      this.popup, this.submit));
    this.draw();
  },
  goal() {
    const [y, m, d] = palaestra.task.target;
    return fmt(y, m, d);
  },
  toggle(open) {
    this.open = open;
    this.draw();
  },
  shift(delta) {
    const index = this.year * 12 + this.month + delta;
    [this.year, this.month] = [Math.floor(index / 12), index % 12];
    this.draw();
  },
  pickDay(day) {
    this.field.value = fmt(this.year, this.month, day);
    this.open = false;
    this.draw();
  },
  draw() {
    const h = palaestra.h;
    this.popup.hidden = !this.open;
    this.toggleButton.setAttribute("aria-expanded", String(this.open));
    if (!this.open) {
      this.popup.replaceChildren();
      return;
    }
    const first = new Date(this.year, this.month, 1).getDay();
    const days = new Date(this.year, this.month + 1, 0).getDate();
    const cells = [...Array(first).fill(null), ...Array.from({length: days}, (_, i) => i + 1)];
    const weeks = [];
    for (let i = 0; i < cells.length; i += 7) weeks.push(cells.slice(i, i + 7));
    const name = `${MONTHS[this.month]} ${this.year}`;
    this.popup.replaceChildren(
      h("div", {class: "row", style: {justifyContent: "space-between"}},
        h("button", {"aria-label": "Previous month", onclick: () => this.shift(-1)}, "‹"),
        h("strong", {"aria-live": "polite"}, name),
        h("button", {"aria-label": "Next month", onclick: () => this.shift(1)}, "›")),
      h("table", {role: "grid", "aria-label": name, style: {margin: "2px 0"}},
        h("thead", {}, h("tr", {}, ["Su", "Mo", "Tu", "We", "Th", "Fr", "Sa"].map((d) => h("th", {}, d)))),
        h("tbody", {}, weeks.map((week) => h("tr", {}, week.map((day) => h("td", {style: {padding: "0"}},
          day && h("button", {"aria-label": `${MONTHS[this.month]} ${day}, ${this.year}`,
            style: {margin: "0", padding: "1px 0", width: "30px"}, onclick: () => this.pickDay(day)}, String(day)))))))));
  },
  progress() {
    if (this.field.value === this.goal()) return 2 / 3;
    const [y, m] = palaestra.task.target;
    return this.open && this.year === y && this.month === m ? 1 / 3 : 0;
  },
  expert() {
    const [y, m, d] = palaestra.task.target;
    if (this.field.value === this.goal()) return {op: "click", el: this.submit};
    if (!this.open) return {op: "click", el: this.toggleButton};
    const delta = (y * 12 + m) - (this.year * 12 + this.month);
    if (delta) return {op: "click", el: document.querySelector(`[aria-label="${delta > 0 ? "Next" : "Previous"} month"]`)};
    return {op: "click", el: document.querySelector(`[aria-label="${MONTHS[m]} ${d}, ${y}"]`)};
  },
});
