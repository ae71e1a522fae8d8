// SearchOpen: a list of people/products/documents with a search box; search for the named item and
// open it. Only the first few items show until a search; opening any other item fails.
// Re-typing a field: the runtime's GUI step selects the old text with Control+A before typing; once it
// is all selected (focused, selection spanning the value), erase it so the next step types afresh.
const retype = (el, text) => (document.activeElement === el && el.value && el.selectionStart === 0
  && el.selectionEnd === el.value.length ? {op: "press", key: "Backspace"} : {op: "type", el, text});
palaestra.define({
  render(app, task) {
    const h = palaestra.h;
    this.query = "";
    this.input = h("input", {type: "search", "aria-label": "Search", placeholder: "Search...", autocomplete: "off",
      onkeydown: (e) => { if (e.key === "Enter") this.search(); }});
    this.button = h("button", {onclick: () => this.search()}, "Search");
    this.results = h("ul", {"aria-label": "Results", style: {paddingLeft: "18px", margin: "4px 0"}});
    this.count = h("p", {class: "muted"});
    const title = {people: "Directory", products: "Catalog", documents: "Documents"}[task.kind];
    this.list = h("div", {style: {marginLeft: `${task.offset}px`}},
      h("h2", {}, title), h("div", {class: "row"}, this.input, this.button), this.count, this.results);
    app.append(this.list);
    this.app = app;
    this.show();
  },
  search() {
    this.query = this.input.value.trim().toLowerCase().replace(/\s+/g, " ");
    this.show();
  },
  matches() {
    const items = palaestra.task.items;
    if (!this.query) return items.slice(0, palaestra.task.shown);
    return items.filter((item) => item.name.toLowerCase().includes(this.query)).slice(0, 8);
  },
  show() {
    const h = palaestra.h;
    const task = palaestra.task;
    const found = this.matches();
    this.count.textContent = this.query
      ? `${found.length} result${found.length === 1 ? "" : "s"} for "${this.query}"`
      : `Showing ${found.length} of ${task.items.length}. Search to find more.`;
    this.results.replaceChildren(...found.map((item) => h("li", {},
      h("a", {href: "#", onclick: (e) => { e.preventDefault(); this.open(item); }}, item.name),
      h("span", {class: "muted"}, ` ${item.meta}`))));
  },
  open(item) {
    const h = palaestra.h;
    this.app.replaceChildren(h("div", {class: "card"}, h("h2", {}, item.name), h("p", {}, item.meta),
      h("button", {onclick: () => {}}, "Back")));
    palaestra.finish(item.name === palaestra.task.target);
  },
  targetLink() {
    return [...document.querySelectorAll("#app ul a")].find((a) => a.textContent === palaestra.task.target);
  },
  progress() {
    if (this.targetLink()) return 2 / 3;
    const typed = this.input.value.trim().toLowerCase();
    return typed && palaestra.task.target.toLowerCase().includes(typed) ? 1 / 3 : 0;
  },
  expert() {
    const link = this.targetLink();
    if (link) return {op: "click", el: link};
    if (this.input.value !== palaestra.task.target) return retype(this.input, palaestra.task.target);
    return {op: "click", el: this.button};
  },
});
