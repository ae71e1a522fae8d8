// ReplyEmail: an inbox; open the email from the named sender about the named subject, reply with the
// given text and send. Opening a wrong email can be undone (Back); sending in a wrong thread or with a
// wrong text fails, and so does deleting the target.
// Re-typing a field: the runtime's GUI step selects the old text with Control+A before typing; once it
// is all selected (focused, selection spanning the value), erase it so the next step types afresh.
const retype = (el, text) => (document.activeElement === el && el.value && el.selectionStart === 0
  && el.selectionEnd === el.value.length ? {op: "press", key: "Backspace"} : {op: "type", el, text});
palaestra.define({
  render(app, task) {
    this.app = app;
    this.view = "inbox";
    this.current = null;
    this.draw();
  },
  norm(text) {
    return text.trim().replace(/\s+/g, " ");
  },
  go(view, current) {
    this.view = view;
    this.current = current;
    this.draw();
  },
  draw() {
    const h = palaestra.h;
    const task = palaestra.task;
    const mail = task.emails.find((m) => m.id === this.current);
    if (this.view === "inbox") {
      this.app.replaceChildren(h("h2", {}, `Inbox (${task.emails.length})`),
        h("ul", {"aria-label": "Messages", style: {listStyle: "none", padding: "0", margin: "0"}},
          task.emails.map((m) => h("li", {style: {borderBottom: "1px solid #d0d4da", padding: "3px 0"}},
            h("a", {href: "#", onclick: (e) => { e.preventDefault(); this.go("read", m.id); }},
              h("strong", {}, m.sender), ` — ${m.subject}`)))));
    } else if (this.view === "read") {
      this.app.replaceChildren(
        h("div", {class: "row"}, h("button", {onclick: () => this.go("inbox", null)}, "Back to inbox"),
          h("button", {onclick: () => this.go("compose", mail.id)}, "Reply"),
          h("button", {onclick: () => palaestra.finish(false)}, "Delete")),
        h("article", {class: "card"}, h("h2", {}, mail.subject), h("p", {class: "muted"}, `From: ${mail.sender}`),
          h("p", {}, mail.body)));
    } else {
      this.text = h("textarea", {id: "reply", rows: 4, style: {width: "100%"}});
      this.app.replaceChildren(h("h2", {}, `Re: ${mail.subject}`), h("p", {class: "muted"}, `To: ${mail.sender}`),
        h("label", {for: "reply"}, "Message"), this.text,
        h("div", {class: "row"}, h("button", {class: "primary", onclick: () => this.send()}, "Send"),
          h("button", {onclick: () => this.go("read", mail.id)}, "Discard")));
    }
  },
  send() {
    const task = palaestra.task;
    palaestra.finish(this.current === task.target && this.norm(this.text.value) === task.reply);
  },
  progress() {
    const task = palaestra.task;
    if (this.current !== task.target) return 0;
    if (this.view === "read") return 0.25;
    return this.norm(this.text.value) === task.reply ? 0.75 : 0.5;
  },
  button(label) {
    return [...document.querySelectorAll("#app button")].find((b) => b.textContent === label);
  },
  expert() {
    const task = palaestra.task;
    if (this.view === "inbox") {
      return {op: "click", el: document.querySelectorAll("#app li a")[task.emails.findIndex((m) => m.id === task.target)]};
    }
    if (this.current !== task.target) return {op: "click", el: this.button(this.view === "read" ? "Back to inbox" : "Discard")};
    if (this.view === "read") return {op: "click", el: this.button("Reply")};
    if (this.norm(this.text.value) !== task.reply) return retype(this.text, task.reply);
    return {op: "click", el: this.button("Send")};
  },
});
