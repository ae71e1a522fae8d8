// Login: username and password fields and a button; success when both are right at submit.
palaestra.define({
  render(app, task) {
    const h = palaestra.h;
    const user = h("div", {class: "field"}, h("label", {}, "Username", h("input", {id: "user", type: "text", autocomplete: "off"})));
    const pass = h("div", {class: "field"}, h("label", {}, "Password", h("input", {id: "pass", type: "password"})));
    const submit = h("button", {class: "primary", onclick: () => this.submit()}, task.button);
    const form = h("div", {class: "card", style: {marginLeft: `${task.offset}px`, maxWidth: "260px"}},
      h("h2", {}, "Account"), ...(task.order === "user-first" ? [user, pass] : [pass, user]), submit);
    app.append(form);
    form.addEventListener("keydown", (e) => { if (e.key === "Enter") this.submit(); });
  },
  fields() {
    return {user: document.getElementById("user"), pass: document.getElementById("pass")};
  },
  submit() {
    const {user, pass} = this.fields();
    palaestra.finish(user.value === palaestra.task.username && pass.value === palaestra.task.password);
  },
  progress() {
    const {user, pass} = this.fields();
    return ((user.value === palaestra.task.username) + (pass.value === palaestra.task.password)) / 3;
  },
  expert() {
    const task = palaestra.task;
    const {user, pass} = this.fields();
    if (user.value !== task.username) return {op: "type", el: user, text: task.username};
    if (pass.value !== task.password) return {op: "type", el: pass, text: task.password};
    return {op: "click", el: [...document.querySelectorAll("#app button")].find((b) => b.textContent === task.button)};
  },
});
