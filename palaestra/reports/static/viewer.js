// palaestra trajectory viewer: filters episodes and shows one as a chat with each turn's record and tokens.
// Data arrive as scripts calling palaestraIndex(meta) and palaestraEpisode(episode); all text is set with
// textContent (model output is never parsed as HTML).
"use strict";

const viewer = { meta: null, rows: [], episodes: {}, waiting: {}, selected: null };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function fmt(x, digits = 3) {
  return typeof x === "number" ? (Number.isInteger(x) ? String(x) : x.toFixed(digits)) : String(x);
}

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const get = (k) => params.get(k) || "";
  return { env: get("env"), source: get("source"), success: get("success"), rmin: get("rmin"), rmax: get("rmax"), episode: get("episode") };
}

function writeHash(state) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(state)) if (v !== "" && v != null) params.set(k, v);
  history.replaceState(null, "", "#" + params.toString());
}

function filters() {
  const v = (id) => document.getElementById(id).value;
  return { env: v("f-env"), source: v("f-source"), success: v("f-success"), rmin: v("f-rmin"), rmax: v("f-rmax") };
}

function matches(row, f) {
  if (f.env && row.env !== f.env) return false;
  if (f.source && row.source !== f.source) return false;
  if (f.success !== "" && String(Number(row.success)) !== f.success) return false;
  if (f.rmin !== "" && row.reward < Number(f.rmin)) return false;
  if (f.rmax !== "" && row.reward > Number(f.rmax)) return false;
  return true;
}

function renderTable() {
  const f = filters();
  const shown = viewer.rows.filter((r) => matches(r, f));
  const body = document.querySelector("#episodes tbody");
  body.replaceChildren(...shown.map((r) => {
    const tr = el("tr", { "data-id": String(r.id), "data-testid": "episode-row" },
      el("td", { text: String(r.id) }), el("td", { text: r.source }), el("td", { text: r.env }),
      el("td", { text: String(r.seed) + (r.sample ? "/" + r.sample : "") }),
      el("td", { class: r.success ? "ok" : "bad", text: r.error ? "error" : r.success ? "success" : "failure" }),
      el("td", { text: fmt(r.reward) }), el("td", { text: String(r.turns) }),
      el("td", { text: String(r.tokens) }), el("td", { text: String(r.format_errors) }));
    if (r.id === viewer.selected) tr.classList.add("selected");
    tr.addEventListener("click", () => openEpisode(r.id));
    return tr;
  }));
  const wins = shown.filter((r) => r.success).length;
  const rate = shown.length ? ` · success ${(100 * wins / shown.length).toFixed(1)}%` : "";
  document.getElementById("count").textContent = `${shown.length} of ${viewer.rows.length} episodes${rate}`;
  writeHash({ ...f, episode: viewer.selected ?? "" });
}

function fillSelect(id, values, chosen) {
  const select = document.getElementById(id);
  for (const v of values) select.append(el("option", { value: v, text: v }));
  if (values.includes(chosen)) select.value = chosen;
}

window.palaestraIndex = function (meta) {
  viewer.meta = meta;
  viewer.rows = meta.episodes;
  document.getElementById("run-name").textContent = meta.run;
  const state = readHash();
  fillSelect("f-env", [...new Set(meta.episodes.map((r) => r.env))].sort(), state.env);
  fillSelect("f-source", [...new Set(meta.episodes.map((r) => r.source))], state.source);
  document.getElementById("f-success").value = state.success;
  document.getElementById("f-rmin").value = state.rmin;
  document.getElementById("f-rmax").value = state.rmax;
  for (const input of document.querySelectorAll("#filters select, #filters input")) {
    input.addEventListener("input", renderTable);
  }
  renderTable();
  if (state.episode !== "") openEpisode(Number(state.episode));
};

window.palaestraEpisode = function (episode) {
  viewer.episodes[episode.id] = episode;
  if (viewer.selected === episode.id) renderEpisode(episode);
};

function openEpisode(id) {
  viewer.selected = id;
  renderTable();
  if (viewer.episodes[id]) return renderEpisode(viewer.episodes[id]);
  const script = el("script", { src: `data/episodes/${id}.js` });
  script.onerror = () => {
    document.getElementById("episode").hidden = false;
    document.getElementById("chat").replaceChildren(el("p", { class: "error", text: `episode ${id} could not be loaded` }));
  };
  document.body.append(script);
}

function tokenView(tokens) {
  const box = el("div", { class: "tokens", "data-testid": "tokens" });
  for (const [text, mask, logprob] of tokens) {
    const p = Math.exp(logprob);
    const span = el("span", { class: `tok m${mask}`, text: text.replace(/\n/g, "↵\n") });
    span.title = mask ? `trained (loss mask 1) · logprob ${logprob.toFixed(3)} · p ${p.toFixed(3)}` : "context (loss mask 0)";
    if (mask) span.style.background = `hsl(${Math.round(120 * p)}, 75%, 82%)`;
    box.append(span);
  }
  return el("div", {}, box,
    el("div", { class: "legend", text: "grey: context, loss mask 0 · coloured: sampled, loss mask 1, green = likely, red = unlikely (hover for the logprob)" }));
}

function turnCard(turn, index) {
  const card = el("div", { class: "turn", "data-testid": "turn" });
  const row = el("div", { class: "row" },
    el("strong", { text: `turn ${index + 1}` }),
    el("span", { "data-testid": "turn-reward", text: `reward ${fmt(turn.reward)}` }),
    turn.terminated ? el("span", { text: "terminated" }) : null,
    turn.truncated ? el("span", { text: "truncated" }) : null,
    turn.finish_reason !== "stop" ? el("span", { text: `finish: ${turn.finish_reason}` }) : null,
    turn.format_error ? el("span", { class: "fmt", "data-testid": "format-error", text: `format error: ${turn.format_error}` }) : null);
  const info = el("details", {}, el("summary", { text: "info" }), el("pre", { text: JSON.stringify(turn.info, null, 2) }));
  row.append(info);
  card.append(row);
  if (turn.tokens) {
    const button = el("button", { type: "button", "data-testid": "show-tokens", text: `tokens (${turn.tokens.length})` });
    let shown = null;
    button.addEventListener("click", () => {
      if (shown) { shown.remove(); shown = null; return; }
      shown = tokenView(turn.tokens);
      card.append(shown);
    });
    row.append(button);
  }
  return card;
}

function messageBubble(message) {
  const role = message.role;
  const body = el("div", { class: `msg ${role}`, "data-testid": `msg-${role}` }, el("span", { class: "role", text: role }), message.text);
  for (const src of message.images || []) body.append(el("img", { src, alt: "screenshot", "data-testid": "screenshot" }));
  if (role !== "system") return body;
  return el("details", { class: "msg system" }, el("summary", { class: "role", text: "system prompt" }), message.text);
}

function renderEpisode(ep) {
  const section = document.getElementById("episode");
  section.hidden = false;
  const outcome = ep.error ? "error" : ep.success ? "success" : "failure";
  document.getElementById("episode-head").replaceChildren(
    el("h2", { "data-testid": "episode-title", text: `#${ep.id} · ${ep.env} · seed ${ep.seed}` }),
    el("div", { class: "meta" },
      el("span", { class: ep.success ? "ok" : "bad", text: outcome }),
      ` · return ${fmt(ep.reward)} · ${ep.turns.length} turns · ${ep.tokens} sampled tokens · ${ep.source} · ${ep.agent}`));
  if (ep.error) document.getElementById("episode-head").append(el("div", { class: "error", text: ep.error }));
  const chat = [];
  let turn = 0;
  for (const message of ep.messages) {
    if (message.role === "system" && !message.text) continue;
    chat.push(messageBubble(message));
    if (message.role === "assistant" && turn < ep.turns.length) {
      chat.push(turnCard(ep.turns[turn], turn));
      turn += 1;
    }
  }
  for (; turn < ep.turns.length; turn += 1) chat.push(turnCard(ep.turns[turn], turn));
  document.getElementById("chat").replaceChildren(...chat);
}
