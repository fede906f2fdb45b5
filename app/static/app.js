"use strict";
// The page of `llm2loss serve`: pick a finished audit, ask it about phrases, show the answers.
//
// Everything shown comes from the server and, through it, from users and audited data: it is
// written with textContent (an example image only as an <img> whose src is checked to be a
// data:image/png;base64 URI), never parsed as HTML. Columns a server does not send are not shown.

const $ = (id) => document.getElementById(id);
const PNG_URI = /^data:image\/png;base64,[A-Za-z0-9+/]+=*$/;

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function isNumber(value) {
  return typeof value === "number" && Number.isFinite(value);
}

function num(value, digits = 2) {
  return isNumber(value) ? value.toFixed(digits) : "—";
}

function signed(value, digits = 2) {
  return isNumber(value) ? (value >= 0 ? "+" : "") + value.toFixed(digits) : "—";
}

function has(row, key) {
  return row !== null && typeof row === "object" && row[key] !== undefined && row[key] !== null;
}

async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new Error("the service cannot be reached: is `llm2loss serve` still running?");
  }
  let data = null;
  try {
    data = await response.json();
  } catch (err) {
    data = null;
  }
  if (!response.ok) {
    const message = data && typeof data.message === "string" ? data.message : `HTTP ${response.status}`;
    throw new Error(message);
  }
  return data;
}

function showError(err) {
  const box = $("error");
  box.textContent = err ? String(err.message || err) : "";
  box.hidden = !err;
}

function currentAudit() {
  const ref = $("audit").value;
  if (!ref) throw new Error("pick an audit first (none listed? finish one with `llm2loss audit MODEL@VERSION`)");
  const [model, version] = ref.split("@");
  return { ref, path: `/api/audits/${encodeURIComponent(model)}/${encodeURIComponent(version)}` };
}

// A table of `rows`; each column is {title, key, cell(row) -> string | Node}. A column with a
// `key` that no row carries is left out (an older server sends fewer columns).
function table(columns, rows) {
  const shown = columns.filter((c) => !c.key || rows.some((r) => has(r, c.key)));
  const wrap = el("div", null, "table-wrap");
  const t = el("table");
  const head = t.createTHead().insertRow();
  for (const c of shown) head.appendChild(el("th", c.title));
  const body = t.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    for (const c of shown) {
      const td = tr.insertCell();
      const value = c.cell(row);
      if (value instanceof Node) td.appendChild(value);
      else td.textContent = value;
    }
  }
  wrap.appendChild(t);
  return wrap;
}

function examples(list) {
  if (!Array.isArray(list) || list.length === 0) return el("span", "—", "muted");
  const ul = el("ul", null, "examples");
  for (const ex of list) {
    const li = el("li");
    const preview = has(ex, "preview") ? String(ex.preview) : "";
    if (PNG_URI.test(preview)) {
      const img = el("img");
      img.src = preview;
      img.alt = `sample ${has(ex, "id") ? ex.id : ""}`;
      li.appendChild(img);
    } else {
      li.appendChild(el("span", preview, "preview"));
    }
    if (has(ex, "loss")) li.appendChild(el("span", `loss ${num(ex.loss)}`, "loss"));
    ul.appendChild(li);
  }
  return ul;
}

function measured(row, key = "measured_loss") {
  if (!has(row, key)) return "—";
  const interval = has(row, "measured_low") ? ` [${num(row.measured_low)}, ${num(row.measured_high)}]` : "";
  return `${num(row[key])}${interval}`;
}

function verdictBadge(verdict) {
  const text = String(verdict);
  const kind = text === "a worse" ? "a-worse" : text === "b worse" ? "b-worse" : "uncertain";
  return el("span", text, `verdict verdict-${kind}`);
}

const ESTIMATE_COLUMNS = [
  { title: "Phrase", cell: (r) => r.phrase },
  { title: "Verdict", key: "verdict", cell: (r) => verdictBadge(r.verdict) },
  { title: "Percentile (held-out, by loss)", key: "percentile",
    cell: (r) => `${num(r.percentile, 0)}${has(r, "percentile_std") ? " ± " + num(r.percentile_std, 0) : ""}` },
  { title: "P(above the median sample)", key: "p_above_median", cell: (r) => num(r.p_above_median) },
  { title: "Rank score (mean ± std)", key: "loss_mean", cell: (r) => `${num(r.loss_mean, 3)} ± ${num(r.loss_std, 3)}` },
  { title: "Familiarity", key: "familiarity_mean", cell: (r) => num(r.familiarity_mean) },
  { title: "Measured loss [90% interval]", key: "measured_loss", cell: (r) => measured(r) },
  { title: "Measured percentile", key: "measured_percentile", cell: (r) => num(r.measured_percentile, 0) },
  { title: "Measured error rate", key: "measured_error", cell: (r) => num(r.measured_error) },
  { title: "Samples", key: "n_retrieved", cell: (r) => String(r.n_retrieved) },
  { title: "Examples", key: "examples", cell: (r) => examples(r.examples) },
];

function renderEstimate(rows) {
  const box = $("estimate-result");
  box.replaceChildren(table(ESTIMATE_COLUMNS, Array.isArray(rows) ? rows : []));
}

function renderCompare(c) {
  const box = $("compare-result");
  const parts = [];
  const head = el("p", null, "verdict-line");
  if (has(c, "verdict")) head.appendChild(verdictBadge(c.verdict));
  else if (c.uncertain === true) head.appendChild(verdictBadge("uncertain"));
  if (has(c, "sentence")) head.appendChild(el("span", c.sentence, "sentence"));
  parts.push(head);
  if (has(c, "reason")) parts.push(el("p", c.reason, "reason"));
  const facts = [
    ["P(A worse than B)", num(c.p_a_worse)],
    ["Percentile gap A − B", has(c, "percentile_diff") ? signed(c.percentile_diff, 1) : null],
    ["Estimated gap A − B: median [q1, q3]", `${signed(c.median_diff, 3)} [${signed(c.q1, 3)}, ${signed(c.q3, 3)}]`],
    ["Measured loss gap A − B [90% interval]", has(c, "measured_diff") ? measured(c, "measured_diff") : null],
    ["Samples A / B", has(c, "n_a") ? `${c.n_a} / ${c.n_b}` : null],
  ].filter(([, value]) => value !== null);
  parts.push(table([{ title: "", cell: (f) => f[0] }, { title: "", cell: (f) => f[1] }], facts));
  if (has(c, "examples_a") || has(c, "examples_b")) {
    const grid = el("div", null, "example-pair");
    for (const [label, key, phrase] of [["A", "examples_a", c.phrase_a], ["B", "examples_b", c.phrase_b]]) {
      const col = el("div");
      col.appendChild(el("h3", `Examples of ${label}: ${phrase}`));
      col.appendChild(examples(c[key]));
      grid.appendChild(col);
    }
    parts.push(grid);
  }
  box.replaceChildren(...parts);
}

const DISCOVER_COLUMNS = [
  { title: "Phrase", cell: (r) => r.phrase },
  { title: "Percentile", key: "percentile", cell: (r) => num(r.percentile, 0) },
  { title: "Score (mean ± std)", key: "mean", cell: (r) => `${num(r.mean, 3)} ± ${num(r.std, 3)}` },
  { title: "Familiarity", key: "familiarity", cell: (r) => num(r.familiarity) },
];

function renderDiscover(found) {
  const parts = [];
  const names = Array.isArray(found.vocabulary) && found.vocabulary.length ? found.vocabulary.join(", ") : "the phrases sent";
  parts.push(el("p", `Vocabulary: ${names}`, "muted"));
  for (const [key, title] of [["highest_loss", "Highest estimated loss"], ["least_familiar", "Least familiar"]]) {
    if (!Array.isArray(found[key]) || found[key].length === 0) continue;
    parts.push(el("h3", title));
    parts.push(table(DISCOVER_COLUMNS, found[key]));
  }
  $("discover-result").replaceChildren(...parts);
}

// Run `work` with the form's button disabled and the result box saying it is busy.
async function ask(button, box, work) {
  showError(null);
  button.disabled = true;
  box.replaceChildren(el("p", "asking…", "muted"));
  try {
    await work();
  } catch (err) {
    box.replaceChildren();
    showError(err);
  } finally {
    button.disabled = false;
  }
}

function phrasesTyped() {
  const text = $("phrases").value;
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l.length > 0);
  return lines.length ? lines : [text]; // nothing typed: the server says what a phrase needs
}

async function openAudit() {
  const status = $("audit-status");
  showError(null);
  if (!$("audit").value) return;
  const { ref, path } = currentAudit();
  const url = new URL(window.location.href);
  url.searchParams.set("audit", ref);
  window.history.replaceState(null, "", url);
  delete status.dataset.ready;
  status.textContent = `opening ${ref} (its encoder and diagnosers load once)…`;
  try {
    const info = await api("GET", path);
    status.textContent = `${info.ref}: ${info.modality} audit, encoder ${info.encoder}; ready`;
    status.dataset.ready = info.ref;
  } catch (err) {
    status.textContent = "";
    showError(err);
  }
}

async function loadAudits() {
  const select = $("audit");
  const wanted = new URL(window.location.href).searchParams.get("audit");
  try {
    const { audits } = await api("GET", "/api/audits");
    select.replaceChildren();
    if (!audits.length) {
      select.appendChild(el("option", "no finished audits in this store", null));
      select.firstChild.value = "";
      return;
    }
    for (const a of audits) {
      const option = el("option", a.significant_regression ? `${a.ref} (significant regression)` : a.ref);
      option.value = a.ref;
      select.appendChild(option);
    }
    if (wanted && audits.some((a) => a.ref === wanted)) select.value = wanted;
    select.disabled = false;
    await openAudit();
  } catch (err) {
    showError(err);
  }
}

async function loadVocabularies() {
  try {
    const { vocabularies } = await api("GET", "/api/vocabularies");
    for (const name of vocabularies) {
      const option = el("option", name);
      option.value = name;
      $("vocabulary").appendChild(option);
    }
  } catch (err) {
    showError(err);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("audit").addEventListener("change", openAudit);
  $("estimate-form").addEventListener("submit", (event) => {
    event.preventDefault();
    ask($("estimate-button"), $("estimate-result"), async () => {
      const { path } = currentAudit();
      renderEstimate(await api("POST", `${path}/estimate`, { phrases: phrasesTyped() }));
    });
  });
  $("compare-form").addEventListener("submit", (event) => {
    event.preventDefault();
    ask($("compare-button"), $("compare-result"), async () => {
      const { path } = currentAudit();
      renderCompare(await api("POST", `${path}/compare`, { a: $("phrase-a").value, b: $("phrase-b").value }));
    });
  });
  $("discover-form").addEventListener("submit", (event) => {
    event.preventDefault();
    ask($("discover-button"), $("discover-result"), async () => {
      const { path } = currentAudit();
      const vocabulary = $("vocabulary").value || null;
      const topK = Number.parseInt($("top-k").value, 10);
      renderDiscover(await api("POST", `${path}/discover`, { vocabulary, top_k: Number.isFinite(topK) ? topK : 10 }));
    });
  });
  loadVocabularies();
  loadAudits();
});
