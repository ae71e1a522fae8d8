// ScrollFind: a long page of cards, each with a button; the named one sits several screens down among
// similar labels. Clicking it succeeds, any other button fails. Progress: half once it is on screen.
palaestra.define({
  render(app, task) {
    const h = palaestra.h;
    app.append(h("div", {style: {marginLeft: `${task.offset}px`, maxWidth: "380px"}}, h("h2", {}, task.heading),
      task.cards.map((card) => h("div", {class: "card"}, h("h3", {}, card.title), h("p", {}, card.text),
        h("button", {onclick: () => palaestra.finish(card.button === task.target)}, card.button)))));
  },
  target() {
    return [...document.querySelectorAll("#app button")].find((b) => b.textContent === palaestra.task.target);
  },
  progress() {
    const r = this.target().getBoundingClientRect();
    return r.top >= 0 && r.bottom <= window.innerHeight ? 0.5 : 0;
  },
  expert() {
    return {op: "click", el: this.target()};
  },
});
