// palaestra web-task runtime: the contract between a task page and the Python env.
//
// Python generates the task (window.TASK, from the env's seeded RNG) and serves this file, then the
// task's own script, which calls palaestra.define({render, progress, expert}). Each step the env calls
// palaestra.status(mode) once and reads {done, success, progress, expert}.
//   render(app, task)  builds the page inside #app.
//   progress()         0..1 from the live DOM: how much of the task is done (dense reward).
//   expert()           the next step of a correct solution, read from the live DOM:
//                        {op: "click", el} | {op: "type", el, text} | {op: "select", el, text}
//                        | {op: "press", key} | {op: "scroll", dy} | null (nothing left to do).
// Tasks end themselves with palaestra.finish(ok) (a submit, a final click); the first call counts.
(() => {
  "use strict";
  const P = {
    task: window.TASK,
    done: false,
    success: false,
    finishedAt: null,
    _spec: null,

    define(spec) {
      this._spec = spec;
      const start = () => spec.render(document.getElementById("app"), this.task);
      if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
      else start();
    },

    finish(ok) {
      if (this.done) return;
      this.done = true;
      this.success = Boolean(ok);
      document.body.dataset.done = this.success ? "success" : "failure";
    },

    // h("button", {class: "x", onclick: fn}, "label", child, ...): a DOM element.
    h(tag, attrs, ...children) {
      const el = document.createElement(tag);
      for (const [key, value] of Object.entries(attrs || {})) {
        if (value === null || value === undefined || value === false) continue;
        if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
        else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
        else if (key in el && key !== "list" && typeof value !== "string") el[key] = value;
        else el.setAttribute(key, value === true ? "" : value);
      }
      for (const child of children.flat()) {
        if (child === null || child === undefined || child === false) continue;
        el.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
      return el;
    },

    status(mode) {
      const spec = this._spec;
      let progress = this.success ? 1 : Number(spec && spec.progress ? spec.progress() : 0);
      if (!Number.isFinite(progress)) progress = 0;
      progress = Math.max(0, Math.min(this.success ? 1 : 0.99, progress));
      const step = this.done || !spec ? null : spec.expert();
      return {done: this.done, success: this.success, progress, expert: this._expertAction(step, mode)};
    },

    _mark(el) {
      for (const old of document.querySelectorAll("[data-palaestra-expert]")) {
        old.removeAttribute("data-palaestra-expert");
      }
      el.setAttribute("data-palaestra-expert", "");
    },

    _clickAt(el) {
      const r = el.getBoundingClientRect();
      const view = window.innerHeight;
      if (r.top < 0 || r.bottom > view) {
        return {op: "scroll", dx: 0, dy: Math.round(r.top + r.height / 2 - view / 2)};
      }
      return {op: "click", x: Math.round(r.left + r.width / 2), y: Math.round(r.top + r.height / 2)};
    },

    // A guess of the role and accessible name the accessibility tree gives `el`, and its index among
    // visible elements with the same guess (document order = tree order). The env looks the element's
    // id up in the page's tree by these; where the guess is not unique there it asks Playwright.
    _role(el) {
      const explicit = el.getAttribute("role");
      if (explicit) return explicit;
      const tag = el.tagName.toLowerCase();
      if (tag === "a" && el.hasAttribute("href")) return "link";
      if (tag === "button") return "button";
      if (tag === "textarea") return "textbox";
      if (tag === "select") return el.multiple || el.size > 1 ? "listbox" : "combobox";
      if (tag === "input") {
        const type = (el.getAttribute("type") || "text").toLowerCase();
        return {checkbox: "checkbox", radio: "radio", button: "button", submit: "button", reset: "button",
                number: "spinbutton", search: "searchbox", range: "slider"}[type] || "textbox";
      }
      return null;
    },

    _name(el) {
      const clean = (text) => (text || "").replace(/\s+/g, " ").trim();
      if (el.getAttribute("aria-label")) return clean(el.getAttribute("aria-label"));
      const by = el.getAttribute("aria-labelledby");
      if (by) return clean(by.split(/\s+/).map((id) => document.getElementById(id)?.textContent).join(" "));
      if (el.labels && el.labels.length) return clean([...el.labels].map((l) => l.textContent).join(" "));
      const tag = el.tagName.toLowerCase();
      if (tag === "input" || tag === "textarea" || tag === "select") return clean(el.getAttribute("title") || el.getAttribute("placeholder"));
      return clean(el.textContent);
    },

    _locate(el) {
      const role = this._role(el);
      if (!role) return {};
      const name = this._name(el);
      let nth = -1;
      let count = 0;
      for (const other of document.body.querySelectorAll("*")) {
        if (other === el) nth = count;
        if (other === el || (this._role(other) === role && this._name(other) === name && other.checkVisibility())) {
          count += 1;
        }
      }
      return nth < 0 ? {} : {role, name, nth, count};
    },

    _expertAction(step, mode) {
      if (!step) return null;
      if (mode === "text") {
        if (step.op === "press") return {op: "press", text: step.key};
        if (step.op === "scroll") return {op: "scroll", dy: step.dy >= 0 ? 1 : -1};
        this._mark(step.el);
        const text = step.text === undefined ? null : String(step.text);
        return {op: step.op, target: true, text, ...this._locate(step.el)};
      }
      if (step.op === "press") return {op: "key", text: step.key};
      if (step.op === "scroll") return {op: "scroll", dx: 0, dy: step.dy};
      if (step.op === "click") return this._clickAt(step.el);
      // type / select: focus the field first, clear what it holds, then type
      if (document.activeElement !== step.el) return this._clickAt(step.el);
      if (step.op === "type" && step.el.value) return {op: "key", text: "Control+A"};
      return {op: "type", text: String(step.text)};
    },
  };
  window.palaestra = P;
})();
