// ttscale trace viewer: the page's index is plain JSON; each problem's trace is gzip + base64 and is
// decoded only when its row is opened (a 500-problem run stays light until then).
"use strict";

const INDEX = JSON.parse(document.getElementById("index").textContent);
const RUN = JSON.parse(document.getElementById("run").textContent);
const DX = 120, DY = 22, R = 6;

function el(tag, attrs, ...children) {
  const ns = ["svg", "g", "circle", "line", "path", "text", "title"].includes(tag) ? "http://www.w3.org/2000/svg" : null;
  const node = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, String(v));
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function fmt(v, digits = 3) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(digits);
  return String(v);
}

async function decode(b64) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return JSON.parse(await new Response(stream).text());
}

// ---- the index ------------------------------------------------------------------------------------
function renderIndex() {
  const solved = INDEX.filter((r) => r.correct === true).length;
  const graded = INDEX.filter((r) => r.correct !== null).length;
  document.getElementById("summary").textContent =
    `${RUN.name} · ${INDEX.length} problems · ${solved}/${graded} correct · methods: ${RUN.methods.join(", ")}`;
  const body = document.querySelector("#problems tbody");
  INDEX.forEach((row, i) => {
    const mark = row.correct === true ? "✓" : row.correct === false ? "✗" : row.error ? "error" : "–";
    body.append(el("tr", { "data-index": i, class: "problem", onclick: () => openProblem(i) },
      el("td", {}, row.problem + (row.second_pass ? " (second pass)" : "")), el("td", { class: "mark" }, mark),
      el("td", {}, fmt(row.answer)), el("td", {}, fmt(row.reference)), el("td", {}, row.method),
      el("td", { class: "num" }, row.tokens), el("td", { class: "num" }, fmt(row.seconds, 2)),
      el("td", { class: "num" }, row.nodes)));
  });
}

// ---- one problem ------------------------------------------------------------------------------------
function graph(trace) {
  // nodes: the root, the partial solutions a step-wise search grew, and whole samples (children of the root)
  const nodes = [{ id: "0", parent: null, role: "root", depth: 0, step: "", scores: [], tokens: 0 }];
  for (const n of trace.nodes) nodes.push({ ...n });
  const fromCandidate = {};
  trace.candidates.forEach((c, i) => { if (c.from) fromCandidate[c.from] = i; });
  const depthOf = {};
  for (const s of trace.samples) {
    const c = trace.candidates[fromCandidate[s.id]];
    const parent = s.parent || "0";  // a call that continues another (budget forcing's rounds) hangs below it
    depthOf[s.id] = (depthOf[parent] || 0) + 1;
    nodes.push({ id: s.id, parent, role: s.role, depth: depthOf[s.id], step: s.text, tokens: s.tokens, key: s.key,
      scores: c && c.score !== null ? [c.score] : [], finished: true, finish_reason: s.finish_reason,
      stats: s.stats });
  }
  const byId = Object.fromEntries(nodes.map((n) => [n.id, n]));
  for (const n of nodes) { n.children = []; }
  for (const n of nodes) if (n.parent !== null) (byId[n.parent] || byId["0"]).children.push(n);
  // what the decisions say of each node: weight (particles), pruned, aborted, kept
  const weight = {}, pruned = new Set(), aborted = new Set();
  for (const d of trace.decisions) {
    if ((d.kind === "resampled" || d.kind === "kept") && d.weights) {
      // a node's weight: from the round it was grown in (a finished particle stays listed in later rounds),
      // its copies in that round added up
      const round = {};
      d.nodes.forEach((id, j) => { round[id] = (round[id] || 0) + d.weights[j]; });
      for (const [id, w] of Object.entries(round)) if (!(id in weight)) weight[id] = w;
    }
    if (d.kind === "pruned") for (const id of d.nodes || []) pruned.add(id);
    if (d.kind === "aborted" && d.trace) aborted.add(d.trace);
  }
  for (const n of nodes) {
    n.weight = weight[n.id];
    n.pruned = pruned.has(n.id);
    n.aborted = n.finish_reason === "aborted" || (n.key !== undefined && aborted.has(n.key));
    n.score = n.scores && n.scores.length ? n.scores[n.scores.length - 1] : null;
  }
  // the chosen path: the chosen candidate's node and its ancestors
  const chosen = trace.info && Number.isInteger(trace.info.chosen) ? trace.candidates[trace.info.chosen] : null;
  let at = chosen && chosen.from ? byId[chosen.from] : null;
  while (at) { at.chosen = true; at = at.parent !== null ? byId[at.parent] : null; }
  return { nodes, byId };
}

function layout(root) {
  let leaf = 0;
  const place = (n) => {
    n.x = n.depth * DX + 20;
    if (!n.children.length) { n.y = leaf++ * DY + 20; return; }
    n.children.forEach(place);
    n.y = (n.children[0].y + n.children[n.children.length - 1].y) / 2;
  };
  place(root);
  return leaf;
}

function colour(score, lo, hi) {
  if (score === null || score === undefined) return "#9aa0a6";
  const t = hi > lo ? (score - lo) / (hi - lo) : 0.5;
  return `hsl(${Math.round(120 * Math.max(0, Math.min(1, t)))}, 65%, 42%)`;
}

function pathText(n, byId) {
  const steps = [];
  for (let at = n; at && at.role !== "root"; at = at.parent !== null ? byId[at.parent] : null) steps.unshift(at.step);
  return steps.join("");
}

function showNode(n, g, trace) {
  const panel = document.getElementById("node");
  const mentions = trace.decisions.filter((d) => JSON.stringify(d).includes(`"${n.id}"`) || (n.key && d.trace === n.key));
  panel.replaceChildren(
    el("h3", {}, `${n.role} ${n.id}`),
    el("table", {}, ...[["depth", n.depth], ["tokens (this step)", n.step_tokens ?? n.tokens], ["tokens (so far)", n.tokens],
      ["finish", n.finish_reason], ["score", fmt(n.score)], ["step scores", (n.scores || []).map((s) => fmt(s)).join(", ")],
      ["step logprob", fmt(n.step_logprob)], ["weight", fmt(n.weight)], ["pruned", n.pruned ? "yes" : "no"],
      ["aborted", n.aborted ? "yes" : "no"],
      ...Object.entries(n.stats || {}).map(([k, v]) => [k, fmt(v)]),
      ["on the chosen path", n.chosen ? "yes" : "no"]].map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, fmt(v))))),
    el("h4", {}, "This step"), el("pre", { id: "node-step" }, n.step || "(the prompt)"),
    el("h4", {}, "The solution so far"), el("pre", {}, pathText(n, g.byId)),
    el("h4", {}, `Decisions that name it (${mentions.length})`),
    el("pre", {}, mentions.map((d) => JSON.stringify(d)).join("\n") || "none"));
}

function renderTree(trace, g) {
  const root = g.byId["0"];
  const leaves = layout(root);
  const depth = Math.max(...g.nodes.map((n) => n.depth));
  const scores = g.nodes.map((n) => n.score).filter((s) => s !== null && s !== undefined);
  // colour spans this problem's scores (a verifier's range is often narrow: 0.4-0.6 for mean token probability)
  const lo = scores.length ? Math.min(...scores) : 0, hi = scores.length ? Math.max(...scores) : 1;
  g.range = scores.length ? `${fmt(lo)} (red) to ${fmt(hi)} (green)` : "no scores";
  const svg = el("svg", { width: (depth + 1) * DX + 60, height: Math.max(1, leaves) * DY + 40, id: "tree" });
  for (const n of g.nodes) {
    if (n.parent === null) continue;
    const p = g.byId[n.parent] || root;
    const width = n.weight !== undefined ? 1 + 8 * n.weight : 1.5;
    svg.append(el("line", { x1: p.x, y1: p.y, x2: n.x, y2: n.y, "stroke-width": width,
      class: "edge" + (n.chosen ? " chosen" : "") + (n.pruned ? " pruned" : "") + (n.aborted ? " aborted" : "")
        + (n.role !== "step" && n.role !== "sample" ? " aside" : "") }));
  }
  for (const n of g.nodes) {
    const classes = ["node", n.role, n.chosen ? "chosen" : "", n.pruned ? "pruned" : "", n.aborted ? "aborted" : "",
      n.finished ? "finished" : ""].filter(Boolean).join(" ");
    svg.append(el("circle", { cx: n.x, cy: n.y, r: n.role === "root" ? R + 2 : R, fill: colour(n.score, lo, hi),
      class: classes, "data-id": n.id, onclick: () => showNode(n, g, trace) },
      el("title", {}, `${n.id}  score ${fmt(n.score)}`)));
  }
  return svg;
}

function renderVotes(trace) {
  if (!trace.votes.length) return el("p", {}, "No candidates.");
  return el("table", { id: "votes" }, el("tr", {}, el("th", {}, "answer"), el("th", {}, "votes"), el("th", {}, "score sum"),
    el("th", {}, "chosen"),
    el("th", {}, "correct"), el("th", {}, "candidates (score)")),
    ...trace.votes.map((v) => el("tr", { class: v.chosen ? "chosen" : "" }, el("td", {}, fmt(v.answer)),
      el("td", { class: "num" }, v.members.length), el("td", { class: "num" }, fmt(v.score_sum)),
      el("td", {}, v.chosen ? "yes" : ""),
      el("td", {}, fmt(trace.candidates[v.members[0]].correct)),
      el("td", {}, v.members.map((i) => `#${i} (${fmt(trace.candidates[i].score)})`).join(" ")))));
}

function renderCost(trace) {
  const u = trace.usage;
  const rows = [["completion tokens", u.completion_tokens], ["prompt tokens", u.prompt_tokens],
    ["of them cached", u.cached_prompt_tokens], ["backend calls", u.backend_calls], ["verifier calls", u.verifier_calls],
    ["verifier tokens", u.verifier_tokens], ["seconds", fmt(trace.seconds, 2)]];
  const kinds = {};
  for (const c of trace.calls) kinds[c.kind] = (kinds[c.kind] || 0) + 1;
  rows.push(["calls recorded", Object.entries(kinds).map(([k, v]) => `${k} ${v}`).join(", ") || "none"]);
  const failed = trace.calls.filter((c) => c.error);
  if (failed.length) rows.push(["calls that raised", failed.map((c) => `${c.key}: ${c.error}`).join("; ")]);
  return el("table", { id: "cost" }, ...rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", { class: "num" }, fmt(v)))));
}

function renderDecisions(trace) {
  const counts = {};
  for (const d of trace.decisions) counts[d.kind] = (counts[d.kind] || 0) + 1;
  const text = trace.decisions.map((d) => { const s = JSON.stringify(d); return s.length > 400 ? s.slice(0, 400) + "…" : s; });
  return el("details", {}, el("summary", {}, Object.entries(counts).map(([k, v]) => `${k} ×${v}`).join(", ") || "none named"),
    el("pre", {}, text.join("\n")));
}

let opening = 0;  // the latest row clicked: a slower decode of an earlier click must not overwrite it

async function openProblem(i) {
  const ticket = ++opening;
  for (const row of document.querySelectorAll("tr.problem")) row.classList.toggle("open", row.dataset.index === String(i));
  const trace = await decode(BLOBS[i]);
  if (ticket !== opening) return;
  const g = graph(trace);
  const view = document.getElementById("view");
  view.replaceChildren(
    el("h2", {}, `${trace.problem} · ${trace.method} · ${trace.correct === true ? "correct" : trace.correct === false ? "wrong" : "ungraded"}`),
    trace.error ? el("p", { class: "error" }, trace.error) : "",
    el("p", { class: "legend" }, "colour: score, ", el("span", { id: "score-range" }), " · edge width: particle weight · ",
      el("span", { class: "chosen-key" }, "blue: the chosen path"), " · dashed: pruned · red dashed: aborted · dotted: lookahead / rollout / judge · click a node"),
    el("div", { id: "panes" }, el("div", { id: "tree-pane" }, renderTree(trace, g)), el("div", { id: "node" }, "Click a node.")),
    el("h3", {}, "Vote groups"), renderVotes(trace),
    el("h3", {}, "Cost"), renderCost(trace),
    el("h3", {}, "Decisions"), renderDecisions(trace));
  document.getElementById("score-range").textContent = g.range;
  document.body.dataset.opened = String(i);
}

renderIndex();
if (INDEX.length) openProblem(0);
