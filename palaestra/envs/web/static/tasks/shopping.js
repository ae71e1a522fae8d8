// Shopping: a single-page shop (search and filters, product page, cart, checkout). Buy exactly the
// asked product (the right category, under the price limit, with the asked option, quantity 1) and
// ship it to the asked address. Placing any other order fails; everything before that can be undone.
// Re-typing a field: the runtime's GUI step selects the old text with Control+A before typing; once it
// is all selected (focused, selection spanning the value), erase it so the next step types afresh.
const retype = (el, text) => (document.activeElement === el && el.value && el.selectionStart === 0
  && el.selectionEnd === el.value.length ? {op: "press", key: "Backspace"} : {op: "type", el, text});
const norm = (text) => String(text).trim().replace(/\s+/g, " ").toLowerCase();
const money = (n) => `$${n.toFixed(2)}`;

palaestra.define({
  render(app, task) {
    this.app = app;
    this.s = {view: "shop", draft: {q: "", cat: "All", max: ""}, applied: {q: "", cat: "All", max: ""},
      product: null, chosen: null, cart: [], ship: {name: "", address: "", city: ""}, note: ""};
    this.draw();
  },
  go(view, extra) {
    Object.assign(this.s, {view, note: ""}, extra || {});
    this.draw();
    window.scrollTo(0, 0);
  },
  results() {
    const {q, cat, max} = this.s.applied;
    const limit = parseFloat(max);
    return palaestra.task.products.filter((p) => norm(p.name).includes(norm(q)) && (cat === "All" || p.category === cat)
      && (Number.isNaN(limit) || p.price <= limit));
  },
  button(label, onclick, attrs) {
    return palaestra.h("button", {onclick, ...(attrs || {})}, label);
  },
  field(id, label, value, oninput, attrs) {
    const h = palaestra.h;
    const input = h("input", {type: "text", id, value, autocomplete: "off", oninput: (e) => oninput(e.target.value), ...attrs});
    return h("div", {class: "field"}, h("label", {for: id, style: {display: "inline-block", minWidth: "90px"}}, label), input);
  },
  draw() {
    const h = palaestra.h;
    const s = this.s;
    if (s.view === "done") {
      this.app.replaceChildren(h("h2", {}, "Thank you!"), h("p", {}, "Your order has been placed."));
      return;
    }
    const count = s.cart.reduce((n, line) => n + line.qty, 0);
    const header = h("nav", {class: "row", "aria-label": "Shop"}, h("strong", {style: {marginRight: "auto"}}, "Palaestra Store"),
      this.button("Products", () => this.go("shop")), this.button(`Cart (${count})`, () => this.go("cart")));
    const note = h("p", {role: "status", style: {color: "#245", minHeight: "1em", margin: "2px 0"}}, s.note);
    this.app.replaceChildren(header, note, ...this[s.view]().filter(Boolean));
  },
  shop() {
    const h = palaestra.h;
    const task = palaestra.task;
    const d = this.s.draft;
    const apply = () => this.go("shop", {applied: {...d}});
    const enter = (e) => { if (e.key === "Enter") apply(); };
    const radios = ["All", ...task.categories].map((cat) => h("label", {style: {display: "inline", marginRight: "8px"}},
      h("input", {type: "radio", name: "category", checked: d.cat === cat, onchange: () => { d.cat = cat; }}), cat));
    const found = this.results();
    return [
      h("div", {class: "row"}, h("input", {type: "search", "aria-label": "Search products", placeholder: "Search products",
        value: d.q, oninput: (e) => { d.q = e.target.value; }, onkeydown: enter})),
      h("fieldset", {style: {margin: "2px 0", padding: "2px 6px"}}, h("legend", {}, "Category"), radios),
      h("div", {class: "row"}, h("label", {for: "max", style: {display: "inline"}}, "Max price ($)"),
        h("input", {type: "text", id: "max", inputmode: "numeric", size: 6, value: d.max,
          oninput: (e) => { d.max = e.target.value; }, onkeydown: enter}),
        this.button("Search", apply, {class: "primary"})),
      h("p", {class: "muted"}, `${found.length} product${found.length === 1 ? "" : "s"}`),
      h("ul", {"aria-label": "Products", style: {listStyle: "none", padding: "0", margin: "0", display: "grid",
        gridTemplateColumns: "1fr 1fr", gap: "4px"}},
        found.map((p) => h("li", {class: "card", style: {margin: "0"}},
          h("a", {href: "#", "data-id": String(p.id), onclick: (e) => { e.preventDefault(); this.go("product", {product: p.id, chosen: null}); }}, p.name),
          h("div", {class: "muted"}, `${p.category} · ${money(p.price)}`)))),
    ];
  },
  product() {
    const h = palaestra.h;
    const s = this.s;
    const p = palaestra.task.products[s.product];
    const options = p.option && h("fieldset", {style: {margin: "4px 0"}}, h("legend", {}, p.option.name),
      p.option.values.map((v) => h("label", {style: {display: "inline", marginRight: "8px"}},
        h("input", {type: "radio", name: "option", checked: s.chosen === v, onchange: () => { s.chosen = v; }}), v)));
    const add = () => {
      if (p.option && !s.chosen) return this.go("product", {note: `Choose a ${p.option.name.toLowerCase()} first.`});
      const line = s.cart.find((l) => l.id === p.id && l.option === s.chosen);
      if (line) line.qty += 1;
      else s.cart.push({id: p.id, option: p.option ? s.chosen : null, qty: 1});
      this.go("product", {note: `Added ${p.name} to the cart.`});
    };
    return [this.button("Back to results", () => this.go("shop")),
      h("h2", {}, p.name), h("p", {}, `${p.category} · ${money(p.price)}`), options,
      this.button("Add to cart", add, {class: "primary"})];
  },
  cart() {
    const h = palaestra.h;
    const s = this.s;
    const products = palaestra.task.products;
    const total = s.cart.reduce((sum, l) => sum + l.qty * products[l.id].price, 0);
    return [h("h2", {}, "Cart"), s.cart.length ? h("table", {},
      h("thead", {}, h("tr", {}, ["Item", "Option", "Qty", "Price", ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, s.cart.map((l, i) => h("tr", {}, h("td", {}, products[l.id].name), h("td", {}, l.option || "-"),
        h("td", {}, String(l.qty)), h("td", {}, money(products[l.id].price)),
        h("td", {}, this.button("Remove", () => { s.cart.splice(i, 1); this.go("cart"); },
          {"aria-label": `Remove ${products[l.id].name}`})))))) : h("p", {}, "Your cart is empty."),
    h("p", {}, `Total: ${money(total)}`),
    this.button("Checkout", () => (s.cart.length ? this.go("checkout") : this.go("cart", {note: "Your cart is empty."})),
      {class: "primary"})];
  },
  checkout() {
    const h = palaestra.h;
    const ship = this.s.ship;
    const place = () => {
      if (!ship.name.trim() || !ship.address.trim() || !ship.city.trim()) {
        return this.go("checkout", {note: "Please fill in every field."});
      }
      const ok = this.cartIsRight() && this.shipRight() === 3;
      this.go("done");
      palaestra.finish(ok);
    };
    return [h("h2", {}, "Shipping"),
      this.field("ship-name", "Full name", ship.name, (v) => { ship.name = v; }),
      this.field("ship-address", "Address", ship.address, (v) => { ship.address = v; }),
      this.field("ship-city", "City", ship.city, (v) => { ship.city = v; }),
      h("div", {class: "row"}, this.button("Place order", place, {class: "primary"}), this.button("Back to cart", () => this.go("cart")))];
  },
  goodLine(line) {
    const task = palaestra.task;
    return line.id === task.target && line.option === task.choice && line.qty === 1;
  },
  cartIsRight() {
    return this.s.cart.length === 1 && this.goodLine(this.s.cart[0]);
  },
  shipRight() {
    const want = palaestra.task.ship;
    return ["name", "address", "city"].filter((k) => norm(this.s.ship[k]) === norm(want[k])).length;
  },
  isolated() {
    // the results show the target and no other product of the same name
    const task = palaestra.task;
    const name = task.products[task.target].name;
    const same = this.results().filter((p) => p.name === name);
    return this.s.view === "shop" && same.length === 1 && same[0].id === task.target;
  },
  progress() {
    const s = this.s;
    const task = palaestra.task;
    if (this.cartIsRight()) return 0.4 + (s.view === "checkout" ? 0.1 : 0) + 0.1 * this.shipRight();
    if (s.view === "product" && s.product === task.target) return task.choice === null || s.chosen === task.choice ? 0.3 : 0.2;
    if (s.view !== "shop" || !this.results().some((p) => p.id === task.target)) return 0;
    if (this.isolated()) return 0.1;
    // partial credit for each filter that is applied and keeps the target in view
    const {q, cat, max} = s.applied;
    return 0.03 * (norm(q) !== "") + 0.03 * (cat === task.category) + 0.03 * (max.trim() !== "");
  },
  byText(label, root) {
    return [...(root || this.app).querySelectorAll("button")].find((b) => b.textContent === label);
  },
  expert() {
    const s = this.s;
    const task = palaestra.task;
    const cartButton = [...this.app.querySelectorAll("nav button")].find((b) => b.textContent.startsWith("Cart"));
    const bad = s.cart.findIndex((l) => !this.goodLine(l));
    if (bad >= 0 || s.cart.length > 1) {
      if (s.view !== "cart") return {op: "click", el: cartButton};
      return {op: "click", el: this.app.querySelectorAll("tbody button")[bad >= 0 ? bad : 1]};
    }
    if (this.cartIsRight()) {
      if (s.view === "cart") return {op: "click", el: this.byText("Checkout")};
      if (s.view !== "checkout") return {op: "click", el: cartButton};
      for (const key of ["name", "address", "city"]) {
        const input = document.getElementById(`ship-${key}`);
        if (norm(input.value) !== norm(task.ship[key])) return retype(input, task.ship[key]);
      }
      return {op: "click", el: this.byText("Place order")};
    }
    if (s.view === "product") {
      if (s.product !== task.target) return {op: "click", el: this.byText("Back to results")};
      if (task.choice !== null && s.chosen !== task.choice) {
        const label = [...this.app.querySelectorAll("fieldset label")].find((l) => l.textContent === task.choice);
        return {op: "click", el: label.querySelector("input")};
      }
      return {op: "click", el: this.byText("Add to cart")};
    }
    if (s.view !== "shop") return {op: "click", el: this.byText("Products")};
    if (this.isolated()) return {op: "click", el: this.app.querySelector(`a[data-id="${task.target}"]`)};
    const search = this.app.querySelector("input[type=search]");
    if (search.value !== task.query) return retype(search, task.query);
    const radio = [...this.app.querySelectorAll("fieldset label")].find((l) => l.textContent === task.category);
    if (!radio.querySelector("input").checked) return {op: "click", el: radio.querySelector("input")};
    const max = document.getElementById("max");
    if (max.value !== String(task.limit)) return retype(max, String(task.limit));
    return {op: "click", el: this.byText("Search")};
  },
});
