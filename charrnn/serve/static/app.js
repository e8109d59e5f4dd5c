// charrnn serve: three views over the JSON API (no other source of data, no build step).
"use strict";

const $ = (id) => document.getElementById(id);
const VIEWS = ["generate", "inspect", "training"];
let info = null; // the last /api/info answer

// -- shared ------------------------------------------------------------------------------

async function api(path, body, signal) {
  const opts = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal,
  };
  const res = await fetch(path, opts);
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try { message = (await res.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return res;
}

// Surprise s in nats -> a background: none near 0, through yellow to red by 6 nats.
function surpriseColour(s) {
  if (s === null || s === undefined || !(s > 0.3)) return "";
  const t = Math.min(s / 6, 1);
  return `rgba(255, ${Math.round(215 * (1 - t))}, 0, ${(0.12 + 0.6 * t).toFixed(3)})`;
}

// Activation v scaled by the largest |v| -> red for positive, blue for negative.
function activationColour(v, scale) {
  const t = Math.min(Math.abs(v) / (scale || 1), 1);
  return v >= 0 ? `rgba(215, 40, 40, ${(0.75 * t).toFixed(3)})` : `rgba(40, 90, 220, ${(0.75 * t).toFixed(3)})`;
}

function span(ch, background) {
  const el = document.createElement("span");
  el.textContent = ch;
  if (background) el.style.background = background;
  return el;
}

function fmt(x, digits = 3) {
  return x === null || x === undefined ? "–" : Number(x).toFixed(digits);
}

// -- views and the model line ------------------------------------------------------------

function showView() {
  const name = VIEWS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "generate";
  for (const v of VIEWS) {
    $(`view-${v}`).hidden = v !== name;
    $(`tab-${v}`).classList.toggle("active", v === name);
  }
}

async function refreshInfo() {
  try {
    info = await (await api("/api/info")).json();
  } catch (e) {
    $("model-status").textContent = `server unreachable: ${e.message}`;
    $("model-status").classList.add("error");
    return;
  }
  const status = $("model-status");
  status.classList.remove("error");
  const m = info.default ? info.models[info.default] : null;
  if (!m) {
    status.textContent = `no model yet in ${info.directory}/ — train one (charrnn train … --out ${info.directory})`;
  } else {
    status.textContent = `${m.file}: step ${m.step}, validation loss ${fmt(m.val_loss)} nats/char, ` +
      `${m.config.cell || "elman"} H=${m.hidden_size}, ${m.vocab_size} characters`;
  }
  const errors = Object.values(info.models).filter((e) => e.error).map((e) => e.error);
  if (errors.length) {
    status.textContent += ` — ${errors.join("; ")}`;
    status.classList.add("error");
  }
  fillLayers();
  onModels();
}

// -- Generate ----------------------------------------------------------------------------

let generation = null; // the AbortController of the sample being streamed

async function generate(event) {
  event.preventDefault();
  if (generation) generation.abort();
  const out = $("gen-out");
  out.textContent = "";
  const body = {
    prime: $("gen-prime").value, temperature: Number($("gen-temp").value),
    length: Number($("gen-length").value || 0), rate: Number($("gen-rate").value),
  };
  if ($("gen-topk").value) body.top_k = Number($("gen-topk").value);
  if ($("gen-topp").value) body.top_p = Number($("gen-topp").value);
  if ($("gen-penalty").value) body.repetition_penalty = Number($("gen-penalty").value);
  if ($("gen-seed").value !== "") body.seed = Number($("gen-seed").value);
  const ctrl = new AbortController();
  generation = ctrl;
  $("gen-stop").disabled = false;
  $("gen-info").classList.remove("error");
  $("gen-info").textContent = "generating…";
  let count = 0, start = null, ending = "stopped";
  try {
    const res = await api("/api/sample", body, ctrl.signal);
    await readEvents(res, (e) => {
      if (e.event === "start") {
        start = e;
        if (e.prime) out.appendChild(span(e.prime, ""));
      } else if (e.event === "end") {
        ending = e.reason === "stop_at" ? "ended at the stop string" : "done";
      } else {
        out.appendChild(span(e.c, surpriseColour(-Math.log(Math.max(e.p, 1e-12)))));
        count += 1;
        if (count % 20 === 0) $("gen-info").textContent = `${count} characters…`;
      }
    });
  } catch (e) {
    if (e.name !== "AbortError") {
      $("gen-info").textContent = e.message;
      $("gen-info").classList.add("error");
    }
  } finally {
    if (generation === ctrl) {
      generation = null;
      $("gen-stop").disabled = true;
    }
  }
  if (start && !$("gen-info").classList.contains("error")) {
    $("gen-info").textContent = `${count} characters, ${ending} · seed ${start.seed} · ${start.model}.npz step ${start.step}`;
  }
}

// Calls onEvent for each line of a newline-delimited JSON response, as the lines arrive.
async function readEvents(res, onEvent) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line) onEvent(JSON.parse(line));
    }
  }
}

function stopGeneration() {
  if (generation) generation.abort(); // closing the connection stops the server's work
}

// -- Inspect -----------------------------------------------------------------------------

let inspected = null; // {score, acts, unit}

async function inspect(event) {
  event.preventDefault();
  const text = $("insp-text").value;
  $("insp-summary").classList.remove("error");
  $("insp-summary").textContent = "scoring…";
  try {
    const [score, acts] = await Promise.all([
      (await api("/api/score", { text, top: 5 })).json(),
      (await api("/api/activations", { text, count: 12, ...layerChoice() })).json(),
    ]);
    inspected = { score, acts, unit: null };
  } catch (e) {
    $("insp-summary").textContent = e.message;
    $("insp-summary").classList.add("error");
    return;
  }
  const s = inspected.score;
  $("insp-summary").textContent = `${fmt(s.loss, 4)} nats/char · ${fmt(s.bits_per_char, 4)} bits/char · ` +
    `${s.predictions} predictions (${s.model}.npz, step ${s.step}) — hover a character for the model's next guesses`;
  listUnits();
  $("insp-modes").hidden = false;
  document.querySelector("input[name=insp-mode][value=surprise]").checked = true;
  drawInspected();
}

// Which layer's state the units come from: {layer, state} from the select ("1:h", "0:c").
function layerChoice() {
  const value = $("insp-layer").value;
  if (!value) return {};
  const [layer, state] = value.split(":");
  return { layer: Number(layer), state };
}

// The layers (and an LSTM's cell states) of the default model, in the Inspect view's select.
function fillLayers() {
  const m = info && info.default ? info.models[info.default] : null;
  const select = $("insp-layer");
  const key = m ? `${m.name}:${m.config.layers}:${m.config.cell}` : "";
  if (select.dataset.key === key) return;
  select.dataset.key = key;
  select.textContent = "";
  if (!m) return;
  const L = m.config.layers || 1;
  for (let l = L - 1; l >= 0; l--) {
    for (const state of m.config.cell === "lstm" ? ["h", "c"] : ["h"]) {
      const o = document.createElement("option");
      o.value = `${l}:${state}`;
      o.textContent = `layer ${l}${l === L - 1 ? " (top)" : ""}, ${state === "c" ? "cell state c" : "h"}`;
      select.appendChild(o);
    }
  }
}

async function changeLayer() {
  if (!inspected) return;
  try {
    inspected.acts = await (await api("/api/activations",
      { text: inspected.score.chars.join(""), count: 12, ...layerChoice() })).json();
  } catch (e) {
    $("insp-summary").textContent = e.message;
    $("insp-summary").classList.add("error");
    return;
  }
  inspected.unit = null;
  listUnits();
  document.querySelector("input[name=insp-mode][value=surprise]").checked = true;
  drawInspected();
}

function listUnits() {
  const units = $("insp-units");
  units.textContent = "";
  for (const v of inspected.acts.varying) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = `${v.unit} (σ ${v.std.toFixed(2)})`;
    b.dataset.unit = v.unit;
    b.addEventListener("click", () => showUnit(v.unit));
    units.appendChild(b);
  }
}

async function showUnit(unit) {
  const acts = inspected.acts;
  if (!acts.units.includes(unit)) {
    try {
      const extra = await (await api("/api/activations",
        { text: inspected.score.chars.join(""), units: [unit], ...layerChoice() })).json();
      acts.units.push(unit);
      acts.values.push(extra.values[0]);
    } catch (e) {
      $("insp-summary").textContent = e.message;
      $("insp-summary").classList.add("error");
      return;
    }
  }
  inspected.unit = unit;
  document.querySelector("input[name=insp-mode][value=surprise]").checked = false;
  drawInspected();
}

function drawInspected() {
  const out = $("insp-out");
  out.textContent = "";
  const { score, acts, unit } = inspected;
  for (const b of $("insp-units").children) b.classList.toggle("active", Number(b.dataset.unit) === unit);
  let values = null, scale = 1;
  if (unit !== null) {
    values = acts.values[acts.units.indexOf(unit)];
    scale = Math.max(...values.map(Math.abs)) || 1;
  }
  const frag = document.createDocumentFragment();
  score.chars.forEach((ch, i) => {
    const el = span(ch, values ? activationColour(values[i], scale) : surpriseColour(score.losses[i]));
    el.dataset.i = i;
    frag.appendChild(el);
  });
  out.appendChild(frag);
}

function showTooltip(event) {
  const el = event.target;
  const tip = $("tooltip");
  if (!inspected || el.dataset.i === undefined) { tip.hidden = true; return; }
  const i = Number(el.dataset.i);
  const { score, acts, unit } = inspected;
  const show = (c) => (c === "\n" ? "↵" : c === " " ? "␣" : c);
  const rows = score.top[i].map(([c, p]) =>
    `<tr><td>${escapeHtml(show(c))}</td><td>${(100 * p).toFixed(1)}%</td><td><span class="bar" data-w="${p}"></span></td></tr>`);
  const loss = score.losses[i] === null ? "not predicted (first character)" : `${score.losses[i].toFixed(3)} nats`;
  const act = unit === null ? "" : `<div>unit ${unit} (layer ${acts.layer} ${acts.state}): ` +
    `${acts.values[acts.units.indexOf(unit)][i].toFixed(3)}</div>`;
  tip.innerHTML = `<div>${escapeHtml(show(score.chars[i]))}: ${loss}</div>${act}<div>next:</div><table>${rows.join("")}</table>`;
  for (const bar of tip.querySelectorAll(".bar")) bar.style.width = `${Math.round(80 * Number(bar.dataset.w))}px`;
  tip.style.left = `${Math.min(event.clientX + 14, window.innerWidth - 220)}px`;
  tip.style.top = `${event.clientY + 16}px`;
  tip.hidden = false;
}

function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function readUpload() {
  const file = $("insp-file").files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => { $("insp-text").value = reader.result; };
  reader.readAsText(file);
}

// -- Training ----------------------------------------------------------------------------

const metrics = { rows: [], next: 0 };
const seenVersions = {};
let trainSample = null; // AbortController of the training view's sample

async function refreshMetrics() {
  let m;
  try {
    m = await (await api(`/api/metrics?since=${metrics.next}`)).json();
  } catch (e) {
    $("train-status").textContent = e.message;
    return;
  }
  if (m.reset) metrics.rows = [];
  metrics.rows.push(...m.rows);
  metrics.next = m.next;
  const last = metrics.rows[metrics.rows.length - 1];
  $("train-status").textContent = !m.exists ? `no metrics.jsonl in ${info ? info.directory : "the directory"} yet`
    : `${metrics.rows.length} rows of metrics.jsonl, last at step ${last ? last.step : "–"}` +
      (last ? `, train loss ${fmt(last.train_loss)}` : "") + " · updates every 2 s";
  drawChart();
}

function drawChart() {
  const svg = $("chart");
  svg.textContent = "";
  const rows = metrics.rows.filter((r) => typeof r.step === "number");
  const train = rows.filter((r) => typeof r.train_loss === "number").map((r) => [r.step, r.train_loss]);
  const val = rows.filter((r) => typeof r.val_loss === "number").map((r) => [r.step, r.val_loss]);
  const W = 800, H = 320, L = 50, R = 15, T = 15, B = 35;
  const all = train.concat(val);
  if (!all.length) return;
  const xmax = Math.max(...all.map((p) => p[0]), 1);
  const ys = all.map((p) => p[1]).sort((a, b) => a - b);
  const ymin = Math.max(0, ys[0] - 0.05);
  const ymax = Math.max(ys[Math.floor(0.98 * (ys.length - 1))] + 0.05, ymin + 0.1); // the first steps' spike may leave the top
  const x = (s) => L + (W - L - R) * (s / xmax);
  const y = (v) => T + (H - T - B) * (1 - (Math.min(v, ymax) - ymin) / (ymax - ymin));
  const add = (tag, attrs, text) => {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    svg.appendChild(el);
    return el;
  };
  for (let i = 0; i <= 4; i++) {
    const v = ymin + (ymax - ymin) * i / 4;
    add("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" });
    add("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(2));
    const s = xmax * i / 4;
    add("text", { x: x(s), y: H - B + 16, "text-anchor": "middle" }, Math.round(s));
  }
  add("text", { x: (W + L) / 2, y: H - 4, "text-anchor": "middle" }, "step");
  add("line", { x1: L, x2: L, y1: T, y2: H - B, class: "axis" });
  add("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" });
  const path = (pts) => pts.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
  if (train.length) add("path", { d: path(train), class: "train", id: "train-curve", "data-points": train.length });
  if (val.length) {
    add("path", { d: path(val), class: "val", id: "val-curve", "data-points": val.length });
    for (const p of val) add("circle", { cx: x(p[0]), cy: y(p[1]), r: 2.5, class: "val-dot" });
  }
}

// When a checkpoint file is reloaded, show a fresh sample from the newest one.
function onModels() {
  const changed = Object.values(info.models).filter((m) => m.loaded && seenVersions[m.name] !== m.version);
  for (const m of changed) seenVersions[m.name] = m.version;
  if (!changed.length) return;
  const newest = changed.reduce((a, b) => ((b.step || 0) > (a.step || 0) ? b : a));
  freshSample(newest);
}

async function freshSample(m) {
  if (trainSample) trainSample.abort();
  const ctrl = new AbortController();
  trainSample = ctrl;
  const out = $("train-sample");
  let text = "";
  try {
    const res = await api("/api/sample", { model: m.name, length: 300, temperature: 0.8, seed: 1 }, ctrl.signal);
    await readEvents(res, (e) => {
      if (e.c !== undefined) text += e.c;
      if (e.event === "start") $("train-sample-info").textContent = `${m.file}, step ${e.step} (temperature 0.8, seed 1)`;
    });
    out.textContent = text;
  } catch (e) {
    if (e.name !== "AbortError") $("train-sample-info").textContent = e.message;
  } finally {
    if (trainSample === ctrl) trainSample = null;
  }
}

// -- start -------------------------------------------------------------------------------

window.addEventListener("hashchange", showView);
$("gen-form").addEventListener("submit", generate);
$("gen-stop").addEventListener("click", stopGeneration);
$("gen-temp").addEventListener("input", () => { $("gen-temp-value").textContent = Number($("gen-temp").value).toFixed(2); });
$("insp-form").addEventListener("submit", inspect);
$("insp-file").addEventListener("change", readUpload);
$("insp-layer").addEventListener("change", changeLayer);
$("insp-out").addEventListener("mouseover", showTooltip);
$("insp-out").addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
$("insp-unit").addEventListener("change", () => {
  const u = Number($("insp-unit").value);
  if (inspected && Number.isInteger(u)) showUnit(u);
});
for (const radio of document.querySelectorAll("input[name=insp-mode]")) {
  radio.addEventListener("change", () => { if (inspected) { inspected.unit = null; drawInspected(); } });
}
showView();
refreshInfo().then(refreshMetrics);
setInterval(refreshInfo, 2000);
setInterval(refreshMetrics, 2000);
