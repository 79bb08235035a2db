// reskill view: renders every page from the server's JSON (or the export's embedded copy).
// Untrusted text (skills, replies, observations, creator output) only ever becomes DOM text
// nodes: this file never assigns innerHTML/outerHTML, never builds markup from strings and
// never evaluates data. Links are built from numbers and fixed route names only.
"use strict";

(function () {
  const EXPORT_NODE = document.getElementById("export-data");
  const EXPORTED = EXPORT_NODE ? JSON.parse(EXPORT_NODE.textContent) : null;
  const LIVE = !EXPORTED;
  const POLL_MS = 4000;
  const PAGE = 100;
  const CHUNK = 5000;
  const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const ARM_COLORS = { head: "#1f77b4", incumbent: "#1f77b4", candidate: "#ff7f0e", all: "#7f7f7f" };

  // ----- DOM helpers ---------------------------------------------------------------------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "href") el.setAttribute("href", safeHref(v));
      else el.setAttribute(k, String(v));
    }
    append(el, children);
    return el;
  }
  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  function safeHref(v) {
    const s = String(v);
    return s.startsWith("#/") ? s : "#/";
  }
  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }
  function fmt(v, digits) {
    if (v === null || v === undefined || (typeof v === "number" && !isFinite(v))) return "–";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(digits === undefined ? 3 : digits);
    return String(v);
  }
  function pct(v) {
    return v === null || v === undefined ? "–" : (100 * v).toFixed(1) + " %";
  }
  function ci(r, scale) {
    if (!r) return "–";
    const s = scale || 1;
    return `${(s * r.mean).toFixed(3)} [${(s * r.lo).toFixed(3)}, ${(s * r.hi).toFixed(3)}] n=${r.n}`;
  }
  function short(v) {
    return typeof v === "string" && v.length > 12 ? v.slice(0, 12) : v;
  }
  function badge(text, kind) {
    return h("span", { class: "badge " + (kind || "") }, text);
  }
  function table(headers, rows, cls) {
    return h("table", { class: cls || "grid" },
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
      h("tbody", {}, rows));
  }
  function details(summary, body, open) {
    return h("details", { open: open ? "" : null }, h("summary", {}, summary), body);
  }
  function pre(text, cls) {
    return h("pre", { class: cls || "text" }, text === null || text === undefined ? "" : String(text));
  }

  // ----- data ------------------------------------------------------------------------------
  function api(path) {
    if (EXPORTED) {
      if (Object.prototype.hasOwnProperty.call(EXPORTED.api, path)) return Promise.resolve(EXPORTED.api[path]);
      return Promise.reject(new Error("not included in this export: " + path));
    }
    return fetch(path, { headers: { Accept: "application/json" } }).then((r) => {
      if (!r.ok) throw new Error(`${path}: ${r.status}`);
      return r.json();
    });
  }

  const state = { runs: [], run: 0, compare: new Set(), timer: null, episodes: {}, route: null };

  function route() {
    const raw = location.hash.replace(/^#\/?/, "");
    const [path, qs] = raw.split("?");
    const parts = path.split("/").filter(Boolean);
    const query = new URLSearchParams(qs || "");
    return { page: parts[0] || "run", args: parts.slice(1).map((x) => parseInt(x, 10)), query };
  }

  function setTabs(page) {
    const tabs = [["run", "Run"], ["episodes", "Episodes"], ["library", "Library"], ["creator", "Creator"], ["eval", "Eval"]];
    const nav = clear(document.getElementById("tabs"));
    for (const [id, label] of tabs) {
      const href = id === "run" ? "#/run" : `#/${id}/${state.run}`;
      nav.appendChild(h("a", { href, class: page === id || (page === "episode" && id === "episodes") || (page === "diff" && id === "episodes") ? "active" : "" }, label));
    }
  }

  function stopPolling() {
    if (state.timer) clearInterval(state.timer);
    state.timer = null;
  }
  function poll(fn) {
    stopPolling();
    if (LIVE) state.timer = setInterval(fn, POLL_MS);
  }

  function render() {
    const r = route();
    state.route = r;
    if (r.args.length && r.page !== "run" && r.args[0] >= 0 && r.args[0] < state.runs.length) state.run = r.args[0];
    document.getElementById("run-select").value = String(state.run);
    setTabs(r.page);
    stopPolling();
    const main = clear(document.getElementById("main"));
    const pages = { run: pageRun, episodes: pageEpisodes, episode: pageEpisode, diff: pageDiff, library: pageLibrary, creator: pageCreator, eval: pageEval };
    const fn = pages[r.page] || pageRun;
    document.body.setAttribute("data-rendered", "0");
    Promise.resolve(fn(main, r)).catch((e) => {
      main.appendChild(h("p", { class: "error" }, String(e.message || e)));
    }).finally(() => document.body.setAttribute("data-rendered", "1"));
  }

  // ----- Run page ----------------------------------------------------------------------------
  const CHARTS = [
    { title: "success per arm", match: (k) => /^arms\/[^/]+\/success_rate$/.test(k) || k === "episode/success_rate", range: [0, 1] },
    { title: "reward per arm", match: (k) => /^arms\/[^/]+\/reward_mean$/.test(k) || k === "episode/reward_mean" },
    { title: "valid-action ratio", match: (k) => k === "episode/valid_action_ratio" || k === "episode/invalid_command_ratio", range: [0, 1] },
    { title: "p_new (P candidate best)", match: (k) => k === "versions/p_candidate", range: [0, 1] },
    { title: "turns per episode", match: (k) => k === "episode/turns_mean" },
    { title: "tokens", match: (k) => /tokens/.test(k) && !/per_s$/.test(k) },
    { title: "step seconds", match: (k) => k === "time/step_s" || k === "timing_s/step" },
  ];

  function seriesLabel(key) {
    const m = /^arms\/([^/]+)\//.exec(key);
    if (m) return m[1];
    if (key.startsWith("episode/")) return key === "episode/success_rate" || key === "episode/reward_mean" ? "all" : key.slice(8);
    return key;
  }

  function chart(el, spec, overviews) {
    const steps = new Set();
    for (const o of overviews) o.metrics.step.forEach((s) => steps.add(s));
    const xs = Array.from(steps).sort((a, b) => a - b);
    if (!xs.length) return false;
    const data = [xs];
    const series = [{ label: "step" }];
    overviews.forEach((o, ri) => {
      const pos = new Map(o.metrics.step.map((s, i) => [s, i]));
      for (const key of Object.keys(o.metrics.columns).filter(spec.match)) {
        const col = o.metrics.columns[key];
        data.push(xs.map((x) => (pos.has(x) ? col[pos.get(x)] : null)));
        const label = seriesLabel(key);
        const multi = overviews.length > 1;
        series.push({
          label: multi ? `${o.run.name}: ${label}` : label,
          stroke: multi ? COLORS[ri % COLORS.length] : ARM_COLORS[label] || COLORS[(series.length - 1) % COLORS.length],
          dash: label === "incumbent" ? [6, 4] : label === "all" ? [2, 3] : undefined,
          width: 1.5,
          points: { show: xs.length < 60 },
          spanGaps: false,
        });
      }
    });
    if (series.length === 1) return false;
    const spans = [];
    overviews.forEach((o, ri) => {
      const last = o.metrics.step.length ? o.metrics.step[o.metrics.step.length - 1] : 0;
      for (const t of o.tests) {
        if (t.started === null || t.started === undefined) continue;
        spans.push({ from: t.started, to: t.decided === null || t.decided === undefined ? last : t.decided, color: t.outcome === "accepted" ? "rgba(44,160,44,0.10)" : t.outcome === "rejected" ? "rgba(214,39,40,0.08)" : "rgba(255,127,14,0.12)" });
      }
    });
    const box = h("div", { class: "chart" });
    el.appendChild(box);
    const width = Math.max(320, Math.min(560, (el.clientWidth || 1100) / 2 - 24));
    const opts = {
      title: spec.title,
      width,
      height: 220,
      scales: { x: { time: false }, y: spec.range ? { range: [spec.range[0] - 0.02, spec.range[1] + 0.02] } : {} },
      axes: [{ label: "step" }, {}],
      series,
      hooks: {
        drawClear: [
          (u) => {
            const ctx = u.ctx;
            for (const s of spans) {
              const x0 = u.valToPos(s.from + 0.5, "x", true);
              const x1 = u.valToPos(s.to + 0.5, "x", true);
              ctx.fillStyle = s.color;
              ctx.fillRect(Math.min(x0, x1), u.bbox.top, Math.abs(x1 - x0), u.bbox.height);
            }
          },
        ],
      },
    };
    new window.uPlot(opts, data, box);
    return true;
  }

  function configTree(obj) {
    if (obj === null || typeof obj !== "object") return h("span", { class: "val" }, fmt(obj));
    const entries = Array.isArray(obj) ? obj.map((v, i) => [i, v]) : Object.entries(obj);
    return h("ul", { class: "tree" }, entries.map(([k, v]) =>
      v !== null && typeof v === "object"
        ? h("li", {}, details(String(k), configTree(v), false))
        : h("li", {}, h("span", { class: "key" }, String(k) + ": "), h("span", { class: "val" }, fmt(v)))));
  }

  async function pageRun(main) {
    const pick = h("div", { class: "compare" }, "runs: ",
      state.runs.map((r) => h("label", {},
        h("input", { type: "checkbox", checked: state.compare.has(r.index) ? "" : null, onchange: (ev) => { if (ev.target.checked) state.compare.add(r.index); else state.compare.delete(r.index); render(); } }),
        ` ${r.name} (${r.kind})`)));
    main.appendChild(pick);
    const body = h("div", {});
    main.appendChild(body);
    let lastSig = null;
    async function draw() {
      const chosen = state.runs.filter((r) => state.compare.has(r.index) && ["train", "evolve", "verl"].includes(r.kind));
      const overviews = await Promise.all(chosen.map((r) => api(`/api/run/${r.index}/overview`)));
      const sig = JSON.stringify(overviews.map((o) => [o.metrics.step.length, o.tests.length, o.events]));
      if (sig === lastSig) return;
      lastSig = sig;
      clear(body);
      if (!overviews.length) {
        const evals = state.runs.filter((r) => state.compare.has(r.index));
        body.appendChild(h("p", { class: "muted" }, evals.length ? "Evaluation runs have no training curves: see the Eval tab." : "Pick a run."));
        return;
      }
      const summary = table(["run", "kind", "env", "steps", "planned", "HEAD", "tests", "accepted", "rejected"],
        overviews.map((o) => h("tr", {},
          h("td", {}, o.run.name), h("td", {}, o.run.kind), h("td", {}, fmt(o.run.env)),
          h("td", {}, String(o.metrics.step.length)), h("td", {}, fmt(o.planned_steps)), h("td", { class: "mono" }, fmt(o.head)),
          h("td", {}, String(o.tests.filter((t) => t.started !== null).length)),
          h("td", {}, String(o.tests.filter((t) => t.outcome === "accepted").length)),
          h("td", {}, String(o.tests.filter((t) => t.outcome === "rejected").length)))));
      body.appendChild(summary);
      body.appendChild(h("p", { class: "muted" }, "Shaded: version tests from start to decision (orange live, green accepted, red rejected)."));
      const grid = h("div", { class: "charts" });
      body.appendChild(grid);
      let drawn = 0;
      for (const spec of CHARTS) if (chart(grid, spec, overviews)) drawn++;
      if (!drawn) grid.appendChild(h("p", { class: "muted" }, "No metrics yet."));
      for (const o of overviews) {
        body.appendChild(h("h3", {}, `Version tests: ${o.run.name}`));
        body.appendChild(o.tests.length ? table(["candidate", "base", "created", "test", "outcome", "operations", "reason"],
          o.tests.map((t) => h("tr", { class: t.outcome || "live" },
            h("td", { class: "mono" }, h("a", { href: `#/library/${o.run.index}` }, short(t.candidate))), h("td", { class: "mono" }, short(fmt(t.base))),
            h("td", {}, fmt(t.created)), h("td", {}, `${fmt(t.started)} → ${fmt(t.decided)}`),
            h("td", {}, badge(t.outcome || "testing", t.outcome || "live")), h("td", {}, fmt(t.operations)), h("td", {}, fmt(t.reason))))) : h("p", { class: "muted" }, "No version was proposed."));
        body.appendChild(details(`Config: ${o.run.name}`, configTree(o.config), false));
      }
    }
    await draw();
    poll(() => draw().catch(() => {}));
  }

  // ----- Episodes ----------------------------------------------------------------------------
  function episodeStore(run) {
    if (!state.episodes[run]) state.episodes[run] = { rows: [], skills: [], total: 0, loading: null };
    return state.episodes[run];
  }

  async function loadEpisodes(run, onProgress, firstOnly) {
    // the first page of the index comes at once (a table to look at), the rest in chunks
    const st = episodeStore(run);
    for (;;) {
      const page = await api(EXPORTED ? `/api/run/${run}/episodes` : `/api/run/${run}/episodes?offset=${st.rows.length}&limit=${st.rows.length ? CHUNK : 2000}`);
      st.columns = page.columns;
      st.skills = page.skills;
      st.total = page.total;
      if (!EXPORTED && page.total < st.rows.length) { st.rows = []; continue; }  // a resume replaced steps
      st.rows.push(...page.rows);
      if (onProgress) onProgress();
      st.all = page.all;
      if (firstOnly || st.rows.length >= page.total || !page.rows.length || EXPORTED) break;
    }
    return st;
  }

  const COL = { i: 0, step: 1, arm: 2, version: 3, task_id: 4, task_type: 5, won: 6, turns: 7, invalid: 8, skills: 9, reward: 10, group: 11, split: 12, error: 13 };

  function filterRows(st, f) {
    const skill = f.get("skill");
    const skillIdx = skill ? st.skills.map((s, i) => [s, i]).filter(([s]) => s === skill || s.split("@")[0] === skill).map(([, i]) => i) : null;
    const num = (k) => (f.get(k) === null || f.get(k) === "" ? null : Number(f.get(k)));
    const smin = num("step_min"), smax = num("step_max"), lmin = num("len_min"), lmax = num("len_max"), inv = num("invalid_min");
    const task = (f.get("task") || "").toLowerCase();
    return st.rows.filter((r) =>
      (smin === null || r[COL.step] >= smin) && (smax === null || r[COL.step] <= smax) &&
      (!f.get("arm") || r[COL.arm] === f.get("arm")) &&
      (!f.get("version") || r[COL.version] === f.get("version")) &&
      (!f.get("task_type") || r[COL.task_type] === f.get("task_type")) &&
      (!task || String(r[COL.task_id]).toLowerCase().includes(task)) &&
      (!f.get("success") || (f.get("success") === "won") === Boolean(r[COL.won])) &&
      (lmin === null || r[COL.turns] >= lmin) && (lmax === null || r[COL.turns] <= lmax) &&
      (inv === null || r[COL.invalid] >= inv) &&
      (!skillIdx || r[COL.skills].some((i) => skillIdx.includes(i))) &&
      (!f.get("errors") || r[COL.error]));
  }

  function distinct(rows, col) {
    return Array.from(new Set(rows.map((r) => r[col]).filter((v) => v !== null && v !== undefined && v !== ""))).sort();
  }

  async function pageEpisodes(main, r) {
    const run = state.run;
    const info = state.runs[run];
    if (info.kind === "expert") {
      main.appendChild(h("p", { class: "muted" }, "An expert-metric run scores states, not episodes: see the Eval tab."));
      return;
    }
    const f = r.query;
    const head = h("p", { class: "muted" }, "loading episodes…");
    const form = h("form", { class: "filters", id: "filters", onsubmit: (ev) => ev.preventDefault() });
    const tableBox = h("div", {});
    main.append(head, form, tableBox);
    let st = episodeStore(run);
    let pageNo = parseInt(f.get("page") || "0", 10) || 0;
    let sortCol = f.get("sort") || "", sortDir = f.get("dir") === "desc" ? -1 : 1;

    function setFilter(name, value) {
      if (value === "" || value === null) f.delete(name); else f.set(name, value);
      f.delete("page");
      pageNo = 0;
      history.replaceState(null, "", `#/episodes/${run}?${f.toString()}`);
      drawTable();
    }
    function select(name, label, values) {
      return h("label", {}, label + " ", h("select", { name, onchange: (ev) => setFilter(name, ev.target.value) },
        h("option", { value: "" }, "any"), values.map((v) => h("option", { value: String(v), selected: f.get(name) === String(v) ? "" : null }, String(v)))));
    }
    function input(name, label, type, size) {
      return h("label", {}, label + " ", h("input", { name, type, size: size || 6, value: f.get(name) || "", onchange: (ev) => setFilter(name, ev.target.value) }));
    }
    function drawForm() {
      clear(form);
      const skillNames = Array.from(new Set(st.skills.map((s) => s.split("@")[0]))).sort();
      form.append(
        input("step_min", "step ≥", "number", 4), input("step_max", "≤", "number", 4),
        select("arm", info.kind === "eval" ? "condition" : "arm", distinct(st.rows, COL.arm)),
        select("version", "version", distinct(st.rows, COL.version)),
        input("task", "task", "text", 14),
        select("task_type", "task type", distinct(st.rows, COL.task_type)),
        select("success", "success", ["won", "lost"]),
        input("len_min", "turns ≥", "number", 3), input("len_max", "≤", "number", 3),
        input("invalid_min", "invalid ≥", "number", 3),
        select("skill", "skill fired", skillNames),
        h("label", {}, h("input", { type: "checkbox", name: "errors", checked: f.get("errors") ? "" : null, onchange: (ev) => setFilter("errors", ev.target.checked ? "1" : "") }), " errors only"),
        h("button", { type: "button", onclick: () => { for (const k of Array.from(f.keys())) f.delete(k); history.replaceState(null, "", `#/episodes/${run}`); drawForm(); drawTable(); } }, "clear"));
    }
    function drawTable() {
      let rows = filterRows(st, f);
      if (sortCol) {
        const c = COL[sortCol];
        rows = rows.slice().sort((a, b) => (a[c] > b[c] ? sortDir : a[c] < b[c] ? -sortDir : a[0] - b[0]));
      }
      const pages = Math.max(1, Math.ceil(rows.length / PAGE));
      pageNo = Math.min(pageNo, pages - 1);
      const shown = rows.slice(pageNo * PAGE, pageNo * PAGE + PAGE);
      clear(head).append(`${rows.length} of ${st.total} episodes` + (st.rows.length < st.total ? ` (indexed ${st.rows.length}…)` : "") + (st.all && st.all > st.total ? ` (this export holds the newest ${st.total} of the run's ${st.all})` : ""));
      const sortable = (label, col) => h("th", { class: "sortable", onclick: () => { if (sortCol === col) sortDir = -sortDir; else { sortCol = col; sortDir = 1; } drawTable(); } }, label + (sortCol === col ? (sortDir > 0 ? " ▲" : " ▼") : ""));
      const headers = [sortable("#", "i"), sortable("step", "step"), sortable(info.kind === "eval" ? "condition" : "arm", "arm"), sortable("version", "version"), sortable("task", "task_id"), sortable("task type", "task_type"), sortable("success", "won"), sortable("turns", "turns"), sortable("invalid", "invalid"), h("th", {}, "skills fired")];
      const body = shown.map((row) => h("tr", { class: "click " + (row[COL.won] ? "won" : "lost"), "data-episode": row[0], onclick: () => { location.hash = `#/episode/${run}/${row[0]}`; } },
        h("td", {}, h("a", { href: `#/episode/${run}/${row[0]}` }, String(row[0]))), h("td", {}, String(row[COL.step])), h("td", {}, fmt(row[COL.arm])),
        h("td", { class: "mono" }, short(fmt(row[COL.version]))), h("td", {}, fmt(row[COL.task_id])), h("td", {}, fmt(row[COL.task_type])),
        h("td", {}, row[COL.error] ? badge("error", "rejected") : row[COL.won] ? badge("won", "accepted") : badge("lost", "muted")),
        h("td", {}, String(row[COL.turns])), h("td", {}, String(row[COL.invalid])),
        h("td", { class: "skills" }, row[COL.skills].map((i) => st.skills[i].split("@")[0]).join(", "))));
      const nav = h("div", { class: "pager" },
        h("button", { type: "button", disabled: pageNo === 0 ? "" : null, onclick: () => { pageNo--; drawTable(); } }, "‹ prev"),
        ` page ${pageNo + 1} of ${pages} `,
        h("button", { type: "button", disabled: pageNo >= pages - 1 ? "" : null, onclick: () => { pageNo++; drawTable(); } }, "next ›"));
      clear(tableBox).append(table(headers, body, "grid episodes"), nav);
    }
    if (!st.rows.length) st = await loadEpisodes(run, null, true);
    drawForm();
    drawTable();
    if (st.rows.length < st.total) loadEpisodes(run, () => { drawForm(); drawTable(); }).catch(() => {});
    poll(async () => {
      const before = st.rows.length;
      await loadEpisodes(run);
      if (st.rows.length !== before) { drawForm(); drawTable(); }
    });
  }

  function escapeRe(s) {
    return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  function highlighted(text, words, cls) {
    // the text as text nodes, with every occurrence of ``words`` in a <mark>
    const el = h("pre", { class: cls });
    const found = words.filter((w) => w && text.includes(w));
    if (!found.length) return append(el, [text]);
    const re = new RegExp(found.map(escapeRe).join("|"), "g");
    let last = 0;
    for (const m of text.matchAll(re)) {
      append(el, [text.slice(last, m.index), h("mark", {}, m[0])]);
      last = m.index + m[0].length;
    }
    return append(el, [text.slice(last)]);
  }

  function turnView(t, i, skills, opts) {
    const chips = (t.skill_ids || []).map((sid) => h("a", { class: "chip fired", href: "#/", title: "show this skill's text", onclick: (ev) => { ev.preventDefault(); const target = document.getElementById("skill-" + sid); if (target) { target.open = true; target.scrollIntoView({ block: "center" }); } } }, sid));
    const rows = [
      h("div", { class: "turn-head" }, h("b", {}, `turn ${i}`), " ",
        t.valid === false ? badge("invalid reply", "rejected") : badge("valid", "accepted"), " ",
        t.invalid_action ? badge("command rejected by the engine", "rejected") : null, " ",
        badge(`parse: ${t.parse}`, "muted"), " ", `reward ${fmt(t.reward)}`,
        t.choice_prob !== null && t.choice_prob !== undefined ? ` · p(choice) ${fmt(t.choice_prob)}` : ""),
      h("div", { class: "lbl" }, "observation"), pre(t.observation, "text obs"),
      h("div", { class: "lbl" }, `skill block (${(t.skill_ids || []).length} fired)`), h("div", { class: "chips" }, chips.length ? chips : h("span", { class: "muted" }, "no skill fired")),
      h("div", { class: "lbl" }, "reply"), pre(t.reply, "text reply"),
      h("div", { class: "lbl" }, "action"), pre(t.action || "(none)", "text action"),
    ];
    if (t.prompt) {
      const names = (t.skill_ids || []).map((sid) => sid.split("@")[0]);
      rows.push(details(`prompt the model saw (${t.prompt.length} chars; fired skills marked)`, highlighted(t.prompt, names, "text prompt"), false));
    }
    if (t.candidates && t.scores) {
      rows.push(details(`${t.candidates.length} scored candidates`, table(["candidate", "score"], t.candidates.map((c, k) => h("tr", { class: c === t.action ? "chosen" : "" }, h("td", {}, c), h("td", {}, fmt(t.scores[k])))))));
    }
    return h("div", { class: "turn" + (opts && opts.diverged ? " diverged" : ""), id: `turn-${i}` }, rows);
  }

  async function pageEpisode(main, r) {
    const [run, n] = r.args;
    const ep = await api(`/api/run/${run}/episode/${n}`);
    const rec = ep.record;
    main.appendChild(h("p", {}, h("a", { href: `#/episodes/${run}` }, "‹ all episodes")));
    main.appendChild(h("h2", {}, `Episode ${rec.episode_id}`));
    main.appendChild(table(["task", "task type", "step", "arm", "version", "group", "reward", "result", "stop"], [h("tr", {},
      h("td", {}, `${rec.task_id}: ${rec.task || ""}`), h("td", {}, fmt(rec.task_type)), h("td", {}, fmt(rec.step)), h("td", {}, fmt(rec.arm || rec.condition)),
      h("td", { class: "mono" }, fmt(rec.library_version)), h("td", {}, fmt(rec.group_id)), h("td", {}, fmt(rec.reward)),
      h("td", {}, rec.error ? badge("error", "rejected") : rec.won ? badge("won", "accepted") : badge("lost", "muted")), h("td", {}, fmt(rec.stop_reason)))]));
    if (rec.error) main.appendChild(pre(rec.error, "text error"));
    if (ep.pairs.length) {
      main.appendChild(h("p", { class: "pairs" }, "Same group, other arm: ", ep.pairs.map((p) => h("span", {}, h("a", { href: `#/diff/${run}/${n}/${p.index}` }, `diff with #${p.index} (${p.arm}, ${p.won ? "won" : "lost"}, ${p.turns} turns)`), " "))));
    }
    const skillBox = h("div", { class: "skilltexts" }, h("h3", {}, "Skills this episode saw (text at its version)"),
      Object.entries(ep.skills).map(([sid, s]) => h("details", { id: "skill-" + sid, class: "skilltext" }, h("summary", {}, sid, " ", badge(s.source, s.source === "missing" ? "rejected" : "muted")), s.text === null ? h("p", { class: "muted" }, "text not in this run folder (a pruned version the run did not record, or an evaluated library kept elsewhere)") : pre(s.text, "text skill"))));
    const turns = h("div", { class: "turns" }, (rec.turns || []).map((t, i) => turnView(t, i, ep.skills)));
    main.append(h("div", { class: "episode" }, turns, skillBox));
    if (rec.final_observation) main.append(h("div", { class: "lbl" }, "final observation"), pre(rec.final_observation, "text obs"));
  }

  async function pageDiff(main, r) {
    const [run, a, b] = r.args;
    const [ea, eb, d] = await Promise.all([api(`/api/run/${run}/episode/${a}`), api(`/api/run/${run}/episode/${b}`), api(`/api/run/${run}/diff/${a}/${b}`)]);
    main.appendChild(h("p", {}, h("a", { href: `#/episode/${run}/${a}` }, `‹ episode #${a}`)));
    main.appendChild(h("h2", {}, `Diff: #${a} (${ea.record.arm}) vs #${b} (${eb.record.arm}) — ${ea.record.task_id}`));
    main.appendChild(h("p", {}, d.first_divergence === null ? "The two episodes took the same actions." : `Actions first differ at turn ${d.first_divergence}.`));
    const ta = ea.record.turns || [], tb = eb.record.turns || [];
    const n = Math.max(ta.length, tb.length);
    const rows = [];
    for (let i = 0; i < n; i++) {
      const x = ta[i], y = tb[i];
      const same = x && y && x.action === y.action;
      rows.push(h("tr", { class: same ? "" : "diverged" }, h("td", {}, String(i)),
        h("td", {}, x ? [pre(x.action || "(none)", "text action"), h("div", { class: "chips" }, (x.skill_ids || []).map((s) => h("span", { class: "chip fired" }, s)))] : ""),
        h("td", {}, y ? [pre(y.action || "(none)", "text action"), h("div", { class: "chips" }, (y.skill_ids || []).map((s) => h("span", { class: "chip fired" }, s)))] : "")));
    }
    main.appendChild(table(["turn", `#${a} ${ea.record.arm} (${ea.record.won ? "won" : "lost"}, ${fmt(short(ea.record.library_version))})`, `#${b} ${eb.record.arm} (${eb.record.won ? "won" : "lost"}, ${fmt(short(eb.record.library_version))})`], rows, "grid diff"));
  }

  // ----- Library -----------------------------------------------------------------------------
  function diffView(lines) {
    return h("pre", { class: "diff" }, lines.map((l) => h("span", { class: l.startsWith("+") && !l.startsWith("+++") ? "add" : l.startsWith("-") && !l.startsWith("---") ? "del" : l.startsWith("@@") ? "hunk" : "" }, l + "\n")));
  }

  function graph(versions, rows, box) {
    // drawn after layout: each node sits at the middle of its (variable height) row
    const NS = "http://www.w3.org/2000/svg";
    const lane = 22;
    const top = box.getBoundingClientRect().top;
    const ys = rows.map((r) => { const b = r.getBoundingClientRect(); return b.top - top + 12; });
    const pos = new Map(versions.map((v, i) => [v.version, i]));
    const laneOf = (v) => (v.parent === null || v.status === "head" || v.status === "accepted" || v.status === "initial" ? 0 : 1);
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("width", String(3 * lane));
    svg.setAttribute("height", String(box.getBoundingClientRect().height));
    svg.setAttribute("class", "graph");
    versions.forEach((v, i) => {
      if (v.parent !== null && pos.has(v.parent)) {
        const j = pos.get(v.parent);
        const p = document.createElementNS(NS, "path");
        const x0 = 12 + lane * laneOf(versions[j]), y0 = ys[j], x1 = 12 + lane * laneOf(v), y1 = ys[i];
        p.setAttribute("d", `M${x0},${y0} C${x0},${(y0 + y1) / 2} ${x1},${(y0 + y1) / 2} ${x1},${y1}`);
        p.setAttribute("class", "edge");
        svg.appendChild(p);
      }
    });
    versions.forEach((v, i) => {
      const c = document.createElementNS(NS, "circle");
      c.setAttribute("cx", String(12 + lane * laneOf(v)));
      c.setAttribute("cy", String(ys[i]));
      c.setAttribute("r", "7");
      c.setAttribute("class", "node " + v.status);
      svg.appendChild(c);
    });
    return svg;
  }

  function testEvidence(t) {
    if (!t) return null;
    const ids = Object.keys(t.posteriors || {});
    const summary = table(["version", "successes / episodes", "posterior α, β", "posterior mean", "P(best)"], ids.map((v) => h("tr", {},
      h("td", { class: "mono" }, short(v)), h("td", {}, t.counts && t.counts[v] ? `${t.counts[v].successes} / ${t.counts[v].episodes}` : "–"),
      h("td", {}, `${fmt(t.posteriors[v].alpha, 2)}, ${fmt(t.posteriors[v].beta, 2)}`), h("td", {}, fmt(t.posteriors[v].mean)), h("td", {}, fmt(t.p_best ? t.p_best[v] : null)))));
    const steps = (t.steps || []).length ? table(["step", "successes", "episodes", "weights", "α", "β", "P(assign)", "P(best)"], t.steps.map((s) => h("tr", {},
      h("td", {}, fmt(s.step)), h("td", {}, (s.successes || []).join(" / ")), h("td", {}, (s.episodes || []).join(" / ")), h("td", {}, (s.weights || []).map((w) => fmt(w, 2)).join(" / ")),
      h("td", {}, (s.alpha || []).map((w) => fmt(w, 2)).join(" / ")), h("td", {}, (s.beta || []).map((w) => fmt(w, 2)).join(" / ")),
      h("td", {}, (s.assign_probs || []).map((w) => fmt(w, 2)).join(" / ")), h("td", {}, (s.p_best || []).map((w) => fmt(w, 3)).join(" / "))))) : null;
    return h("div", { class: "evidence" }, h("p", {}, `${t.outcome} at step ${t.step} (started ${t.started_step}; ${t.mode}, discount ${t.discount}, rule ${t.decision_rule}, M ${fmt(t.m)}): ${t.reason || ""}`), summary, steps ? details("per step (incumbent / candidate)", steps, false) : null);
  }

  async function pageLibrary(main) {
    const run = state.run;
    const lib = await api(`/api/run/${run}/library`);
    if (!lib.available) {
      main.appendChild(h("p", { class: "muted" }, "This run folder has no skill library with history (skills/ or library/)."));
      return;
    }
    main.appendChild(h("h2", {}, `Library versions (HEAD ${lib.head})`));
    const rows = lib.versions.map((v) => h("div", { class: "vrow " + v.status },
      h("div", { class: "vline" }, h("span", { class: "mono" }, v.version), " ", badge(v.status, v.status), " ",
        v.step !== null ? `step ${v.step} · ` : "", `${v.proposed_by || ""}`, v.stored ? "" : " · pruned", " · ", v.operations.join(", ") || "–"),
      h("div", { class: "vreason" }, v.reason || ""),
      v.test ? details("version test evidence", testEvidence(v.test), false) : null,
      v.creator ? details("creator record (assertions, verification)", creatorRecord(v.creator), false) : null));
    const vlist = h("div", { class: "vlist" }, rows);
    const versionsBox = h("div", { class: "versions" }, vlist);
    main.appendChild(versionsBox);
    const redraw = () => {
      const old = versionsBox.querySelector("svg.graph");
      if (old) old.remove();
      versionsBox.insertBefore(graph(lib.versions, rows, vlist), vlist);
    };
    redraw();
    vlist.addEventListener("toggle", redraw, true);
    if (lib.moves.length) {
      main.appendChild(h("h3", {}, "HEAD moves"));
      main.appendChild(table(["version", "step", "reason"], lib.moves.map((m) => h("tr", {}, h("td", { class: "mono" }, m.version), h("td", {}, fmt(m.step)), h("td", {}, m.reason)))));
    }
    main.appendChild(h("h3", {}, "Skills: history and text diffs"));
    for (const [name, changes] of Object.entries(lib.skills)) {
      main.appendChild(details(`${name} (${changes.length} change${changes.length === 1 ? "" : "s"})`,
        h("div", {}, changes.map((c) => h("div", { class: "change" }, h("div", {}, badge(c.op, c.op === "delete" ? "rejected" : c.op === "add" ? "accepted" : "live"), " ", h("span", { class: "mono" }, c.version), c.step !== null ? ` step ${c.step}` : ""), diffView(c.diff)))),
        false));
    }
    const versions = Object.keys(lib.trigger_rates);
    if (versions.length) {
      const names = Array.from(new Set(versions.flatMap((v) => Object.keys(lib.trigger_rates[v]).filter((k) => k !== "_episodes")))).sort();
      main.appendChild(h("h3", {}, "Trigger rates (share of each version's episodes that showed the skill)"));
      main.appendChild(table(["skill", ...versions.map((v) => `${short(v)} (${lib.trigger_rates[v]._episodes} ep.)`)],
        names.map((n) => h("tr", {}, h("td", {}, n), versions.map((v) => h("td", {}, lib.trigger_rates[v][n] === undefined ? "–" : pct(lib.trigger_rates[v][n])))))));
    }
    if (Object.keys(lib.head_texts).length) {
      main.appendChild(h("h3", {}, "Skills at HEAD"));
      for (const [name, text] of Object.entries(lib.head_texts)) main.appendChild(details(name, pre(text, "text skill"), false));
    }
  }

  // ----- Creator -----------------------------------------------------------------------------
  function creatorRecord(c) {
    const parts = [];
    if (c.reason) parts.push(h("p", {}, c.reason));
    if (c.assertions && c.assertions.length) {
      parts.push(table(["assertion", "text", "passed", "failed", "pass rate", "examples"], c.assertions.map((a) => {
        const n = (a.passed || 0) + (a.failed || 0);
        return h("tr", {}, h("td", {}, fmt(a.id)), h("td", {}, fmt(a.text)), h("td", {}, fmt(a.passed)), h("td", {}, fmt(a.failed)), h("td", {}, n ? pct(a.passed / n) : "–"), h("td", { class: "mono" }, (a.example_episode_ids || []).join(", ")));
      })));
    }
    if (c.verification && Object.keys(c.verification).length) {
      parts.push(table(["skill", "verdict", "trigger rate", "targeted episodes", "attempts", "feedback"], Object.entries(c.verification).map(([name, v]) => h("tr", {},
        h("td", {}, name), h("td", {}, v.passed ? badge("passed", "accepted") : badge("failed", "rejected")), h("td", {}, pct(v.trigger_rate)), h("td", {}, fmt(v.targeted_episodes)), h("td", {}, fmt(v.attempts)), h("td", {}, fmt(v.feedback || v.reasons || ""))))));
    }
    return h("div", {}, parts);
  }

  function artifact(a) {
    const body = a.json !== undefined ? pre(JSON.stringify(a.json, null, 2), "text json") : pre(a.text, "text");
    return details(`${a.name} (${a.size} bytes${a.truncated ? ", cut" : ""})`, body, false);
  }

  async function pageCreator(main) {
    const run = state.run;
    const data = await api(`/api/run/${run}/creator`);
    main.appendChild(h("h2", {}, `Creator passes (${data.passes.length})`));
    if (!data.passes.length) main.appendChild(h("p", { class: "muted" }, "No creator pass in this run's events or artifacts."));
    for (const p of data.passes) {
      const kind = p.outcome === "candidate_committed" ? "accepted" : p.outcome === "creator_failed" ? "rejected" : "muted";
      main.appendChild(h("section", { class: "pass" },
        h("h3", {}, `pass at step ${fmt(p.submitted)}`, " ", badge(p.outcome ? p.outcome.replace("creator_", "").replace("candidate_", "") : "running", kind), p.finished !== undefined ? ` (result at step ${fmt(p.finished)})` : ""),
        p.message ? h("p", { class: "muted" }, p.message) : null,
        p.result ? pre(p.result, "text") : null,
        p.candidate ? h("p", {}, "proposal: ", h("a", { href: `#/library/${run}` }, h("span", { class: "mono" }, p.candidate)), p.data && p.data.operations ? ` (${p.data.operations})` : "") : null,
        p.record ? creatorRecord(p.record) : null,
        p.data && p.data.events ? details("pass events", table(["stage", "kind", "message"], p.data.events.map((e) => h("tr", {}, h("td", {}, fmt(e.stage)), h("td", {}, fmt(e.kind)), h("td", {}, fmt(e.message))))), false) : null,
        p.artifacts && p.artifacts.length ? details(`artifacts (${p.artifacts.length} files: reservoir sample, insights, assertions, prompts, answers, verdicts)`, h("div", {}, p.artifacts.map(artifact)), false) : null));
    }
  }

  // ----- Eval --------------------------------------------------------------------------------
  function bar(r, scale) {
    if (!r) return "";
    const s = scale || 1;
    const wrap = h("span", { class: "cibar" });
    const lo = h("span", { class: "ci" }), mid = h("span", { class: "mean" });
    lo.style.left = `${Math.max(0, Math.min(100, 100 * s * r.lo))}%`;
    lo.style.width = `${Math.max(0.5, 100 * s * (r.hi - r.lo))}%`;
    mid.style.left = `${Math.max(0, Math.min(100, 100 * s * r.mean))}%`;
    wrap.append(lo, mid);
    return wrap;
  }

  async function pageEval(main) {
    const run = state.run;
    const data = await api(`/api/run/${run}/eval`);
    if (!data.metric) {
      main.appendChild(h("p", { class: "muted" }, "Not an evaluation run: give `reskill view` a `reskill eval --out` folder."));
      return;
    }
    const s = data.summary;
    if (!s) {
      main.appendChild(h("p", { class: "muted" }, "No records yet."));
      return;
    }
    if (data.metric === "success") {
      main.appendChild(h("h2", {}, `Success by condition (${data.episodes} episodes)`));
      main.appendChild(table(["condition", "split", "episodes", "errors", "success [95 % CI]", "", "turns", "valid actions", "tokens in / out"], s.stats.map((c) => h("tr", {},
        h("td", {}, c.condition), h("td", {}, c.split), h("td", {}, fmt(c.episodes)), h("td", {}, fmt(c.errors)), h("td", {}, ci(c.success)), h("td", {}, bar(c.success)),
        h("td", {}, fmt(c.avg_turns, 1)), h("td", {}, pct(c.valid_action_ratio)), h("td", {}, `${c.input_tokens} / ${c.output_tokens}`)))));
      if (s.paired.length) {
        main.appendChild(h("h3", {}, `Paired difference vs ${s.baseline}`));
        main.appendChild(table(["condition", "split", "difference [95 % CI]", "only condition won", "only baseline won"], s.paired.map((d) => h("tr", {},
          h("td", {}, d.condition), h("td", {}, d.split), h("td", {}, ci(d.diff)), h("td", {}, fmt(d.wins)), h("td", {}, fmt(d.losses))))));
      }
      if (s.task_types.length) {
        main.appendChild(h("h3", {}, "By task type"));
        main.appendChild(table(["condition", "task type", "success [95 % CI]", ""], s.task_types.map((t) => h("tr", {}, h("td", {}, t.condition), h("td", {}, t.task_type), h("td", {}, ci(t.success)), h("td", {}, bar(t.success))))));
      }
      if (s.skills.length) {
        main.appendChild(h("h3", {}, "Per skill"));
        main.appendChild(table(["condition", "skill", "episodes fired", "turns fired", "fire rate", "success when fired", "when not"], s.skills.map((k) => h("tr", {},
          h("td", {}, k.condition), h("td", {}, k.skill), h("td", {}, fmt(k.episodes_fired)), h("td", {}, fmt(k.turns_fired)), h("td", {}, pct(k.fire_rate)), h("td", {}, pct(k.success_when_fired)), h("td", {}, pct(k.success_when_not_fired))))));
      }
      main.appendChild(h("p", {}, h("a", { href: `#/episodes/${run}` }, "episodes of this evaluation ›")));
      return;
    }
    main.appendChild(h("h2", {}, "Expert metric: conditions side by side"));
    main.appendChild(table(["condition", "group", "states", "tasks", "p_opt [95 % CI]", "", "top-1", "planner rank", "skill block chars"], s.figures.map((f) => h("tr", {},
      h("td", {}, f.condition), h("td", {}, f.group), h("td", {}, fmt(f.states)), h("td", {}, fmt(f.tasks)), h("td", {}, ci(f.p_opt)), h("td", {}, bar(f.p_opt)), h("td", {}, ci(f.top1)), h("td", {}, ci(f.expert_rank)), h("td", {}, fmt(f.bundle_chars, 0))))));
    main.appendChild(h("h3", {}, "Paired differences"));
    main.appendChild(table(["metric", "condition − baseline", "group", "difference [95 % CI]"], s.diffs.map((d) => h("tr", {}, h("td", {}, d.metric), h("td", {}, `${d.condition} − ${d.baseline}`), h("td", {}, d.group), h("td", {}, ci(d.diff))))));
    if (s.skills.length) {
      main.appendChild(h("h3", {}, "Per skill (library − none of p_opt)"));
      main.appendChild(table(["skill", "states fired", "tasks", "where fired", "where not", "vs placebo where fired"], s.skills.map((k) => h("tr", {},
        h("td", {}, k.skill), h("td", {}, fmt(k.states_fired)), h("td", {}, fmt(k.tasks_fired)), h("td", {}, ci(k.fired)), h("td", {}, ci(k.not_fired)), h("td", {}, ci(k.vs_placebo_fired))))));
    }
    main.appendChild(h("h3", {}, `States (${data.states.length}): candidates with their probability under each condition; optimal commands marked ★`));
    const box = h("div", {});
    main.appendChild(box);
    let pageNo = 0;
    function draw() {
      clear(box);
      const shown = data.states.slice(pageNo * 20, pageNo * 20 + 20);
      for (const st of shown) {
        const conds = Object.keys(st.conditions);
        const cands = Array.from(new Set(conds.flatMap((c) => st.conditions[c].candidates)));
        const prob = (c, a) => { const x = st.conditions[c]; const k = x.candidates.indexOf(a); return k < 0 ? null : x.probs[k]; };
        box.appendChild(details(`${st.task_id} · step ${st.step} · ${st.task_type} · planner: ${st.expert_action}`, h("div", {},
          h("p", {}, st.task), pre(st.observation, "text obs"),
          table(["", "command", ...conds.map((c) => `${c} (p_opt ${fmt(st.conditions[c].p_opt)})`)], cands.map((a) => h("tr", { class: st.optimal.includes(a) ? "optimal" : "" },
            h("td", {}, st.optimal.includes(a) ? "★" : ""), h("td", {}, a), conds.map((c) => h("td", {}, fmt(prob(c, a)), " ", bar({ lo: 0, hi: prob(c, a) || 0, mean: prob(c, a) || 0 }))))))), false));
      }
      const pages = Math.max(1, Math.ceil(data.states.length / 20));
      box.appendChild(h("div", { class: "pager" },
        h("button", { type: "button", disabled: pageNo === 0 ? "" : null, onclick: () => { pageNo--; draw(); } }, "‹ prev"), ` page ${pageNo + 1} of ${pages} `,
        h("button", { type: "button", disabled: pageNo >= pages - 1 ? "" : null, onclick: () => { pageNo++; draw(); } }, "next ›")));
    }
    draw();
  }

  // ----- start -------------------------------------------------------------------------------
  async function start() {
    state.runs = await api("/api/runs");
    state.runs.forEach((r) => state.compare.add(r.index));
    const sel = document.getElementById("run-select");
    state.runs.forEach((r) => sel.appendChild(h("option", { value: String(r.index) }, `${r.name} (${r.kind})`)));
    sel.addEventListener("change", () => {
      state.run = parseInt(sel.value, 10);
      const r = route();
      location.hash = r.page === "run" ? "#/run" : `#/${r.page === "episode" || r.page === "diff" ? "episodes" : r.page}/${state.run}`;
      render();
    });
    document.getElementById("live").textContent = LIVE ? "live: follows the run folders" : `export of ${EXPORTED.created || ""}`;
    if (state.runs.length && ["eval", "expert"].includes(state.runs[0].kind) && !location.hash) location.hash = "#/eval/0";
    window.addEventListener("hashchange", render);
    render();
    document.body.setAttribute("data-ready", "1");
  }
  start().catch((e) => {
    const main = clear(document.getElementById("main"));
    main.appendChild(h("p", { class: "error" }, String(e.message || e)));
  });
})();
