// ClickLink: links inside prose or a list; click the named one. Any other link fails.
palaestra.define({
  render(app, task) {
    const h = palaestra.h;
    const piece = (part) => (part.link === undefined ? part.text : h("a", {
      href: "#",
      onclick: (e) => { e.preventDefault(); palaestra.finish(part.link === task.target); },
    }, part.link));
    const blocks = task.blocks.map((block) => block.map(piece));
    const body = task.layout === "list"
      ? h("ul", {}, blocks.map((parts) => h("li", {}, parts)))
      : blocks.map((parts) => h("p", {}, parts));
    app.append(h("div", {style: {marginLeft: `${task.offset}px`, maxWidth: `${task.width}px`}},
      h("h2", {}, task.heading), body));
  },
  progress() {
    return 0;
  },
  expert() {
    const link = [...document.querySelectorAll("#app a")].find((a) => a.textContent === palaestra.task.target);
    return {op: "click", el: link};
  },
});
