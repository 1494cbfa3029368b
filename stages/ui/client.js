// The dashboard's pages, in the browser: they fetch the server's JSON and draw tables and
// Vega-Lite plots (vega-embed, served from the installed packages). A running run's page polls
// for new rows every half second and inserts them into the open plots.
/* global vegaEmbed */
"use strict";

const $ = (sel, el = document) => el.querySelector(sel);
const h = (tag, attrs = {}, ...kids) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const k of kids.flat(Infinity)) {
    el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return el;
};
const fmt = (v) =>
  v === null || v === undefined
    ? ""
    : typeof v === "number"
    ? (Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4))))
    : typeof v === "object"
    ? JSON.stringify(v)
    : String(v);
const getJson = async (url) => {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(`${url}: ${r.status} ${await r.text()}`);
  return r.json();
};
const secs = (
  s,
) => (s === null || s === undefined
  ? ""
  : s < 60
  ? `${s.toFixed(1)} s`
  : `${(s / 60).toFixed(1)} min`);
const statusText = (r) =>
  r.status === "running" && r.progress
    ? `running: ${r.stage} ${r.progress.iteration}/${r.progress.of}`
    : r.status === "running"
    ? `running: ${r.stage ?? ""}`
    : r.status;

const VL = "https://vega.github.io/schema/vega-lite/v6.json";
const embed = async (el, spec) => {
  const res = await vegaEmbed(el, { $schema: VL, width: "container", height: 220, ...spec }, {
    renderer: "svg",
    actions: false,
  });
  return res.view;
};

/** A sortable, filterable table; `cols` are {key, label, cell(row) -> string|Node, sort(row)}. */
function table(rows, cols, { filter = true, onRender } = {}) {
  let sortCol = null, desc = false, query = "";
  const wrap = h("div");
  const input = h("input", { type: "search", placeholder: "filter", class: "filter" });
  input.addEventListener("input", () => {
    query = input.value.toLowerCase();
    draw();
  });
  const tbl = h("table", { class: "grid" });
  if (filter) wrap.append(input);
  wrap.append(tbl);
  function draw() {
    const shown = rows.filter((r) =>
      !query ||
      cols.some((c) => String(c.text ? c.text(r) : c.sort?.(r) ?? "").toLowerCase().includes(query))
    );
    if (sortCol) {
      const c = cols.find((c) => c.key === sortCol);
      shown.sort((a, b) => {
        const x = c.sort(a), y = c.sort(b);
        if (x === y) return 0;
        if (x === null || x === undefined || x === "") return 1;
        if (y === null || y === undefined || y === "") return -1;
        return (x < y ? -1 : 1) * (desc ? -1 : 1);
      });
    }
    tbl.replaceChildren(
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          cols.map((c) =>
            h("th", {
              title: c.title ?? c.label,
              onclick: () => {
                if (!c.sort) return;
                desc = sortCol === c.key ? !desc : false;
                sortCol = c.key;
                draw();
              },
            }, c.label + (sortCol === c.key ? (desc ? " \u25bc" : " \u25b2") : ""))
          ),
        ),
      ),
      h(
        "tbody",
        {},
        shown.map((r) =>
          h("tr", { "data-run": r.run ?? r.label ?? "" }, cols.map((c) => h("td", {}, c.cell(r))))
        ),
      ),
    );
    tbl.dataset.rows = String(shown.length);
    onRender?.();
  }
  draw();
  return wrap;
}

// ---- runs ----
async function runsPage(main) {
  const [data, sweeps] = await Promise.all([getJson("/api/runs"), getJson("/api/sweeps")]);
  const selected = new Set();
  const compare = h("button", { disabled: "", id: "compare" }, "compare selected");
  compare.addEventListener(
    "click",
    () => location.href = `/compare?runs=${[...selected].map(encodeURIComponent).join(",")}`,
  );
  const shownMetrics = data.metrics.filter((m) =>
    data.runs.some((r) => r.figures[m] !== undefined)
  );
  const cols = [
    {
      key: "sel",
      label: "",
      cell: (r) => {
        const box = h("input", { type: "checkbox", "data-run": r.run });
        box.addEventListener("change", () => {
          box.checked ? selected.add(r.run) : selected.delete(r.run);
          selected.size >= 2
            ? compare.removeAttribute("disabled")
            : compare.setAttribute("disabled", "");
        });
        return box;
      },
    },
    {
      key: "run",
      label: "run",
      cell: (r) => h("a", { href: `/run/${encodeURIComponent(r.run)}` }, r.run),
      sort: (r) => r.run,
    },
    {
      key: "sweep",
      label: "sweep",
      cell: (r) =>
        r.sweep ? h("a", { href: `/sweep/${encodeURIComponent(r.sweep)}` }, r.sweep) : "",
      sort: (r) => r.sweep ?? "",
    },
    {
      key: "status",
      label: "status",
      cell: (r) => h("span", { class: `st-${r.status}` }, statusText(r)),
      sort: (r) => r.status,
      text: statusText,
    },
    ...data.params.map((p) => ({
      key: p,
      label: p.split(".").at(-1),
      title: p,
      cell: (r) => fmt(r.params[p]),
      sort: (r) => r.params[p] ?? null,
      text: (r) => fmt(r.params[p]),
    })),
    ...shownMetrics.map((m) => ({
      key: m,
      label: m,
      cell: (r) => fmt(r.figures[m]),
      sort: (r) => r.figures[m] ?? null,
    })),
    {
      key: "trained",
      label: "trained",
      title: "compute seconds of what the run holds (cached stages as built)",
      cell: (r) => secs(r.trainedSeconds),
      sort: (r) => r.trainedSeconds,
    },
    {
      key: "when",
      label: "trained at",
      cell: (r) => (r.trainedAt ?? "").replace("T", " ").slice(0, 19),
      sort: (r) => r.trainedAt ?? "",
    },
  ];
  main.replaceChildren(
    h("h1", {}, "Runs"),
    h("p", { class: "sub" }, `${data.runs.length} runs in ${data.results}; `, compare),
    table(data.runs, cols, {
      // for the benchmark: when the table was first drawn, in ms since the navigation started
      onRender: () => main.dataset.painted ??= String(performance.now()),
    }),
    h("h2", {}, "Sweeps"),
    sweeps.length
      ? h(
        "ul",
        {},
        sweeps.map((s) =>
          h(
            "li",
            {},
            h("a", { href: `/sweep/${encodeURIComponent(s.name)}` }, s.name),
            ` ${s.points} points: ${s.byStatus.done} done, ${s.byStatus.running} running, ${s.byStatus.pending} queued, ${s.byStatus.failed} failed${
              s.search ? `; ${s.search}` : ""
            }`,
          )
        ),
      )
      : h("p", { class: "sub" }, "none"),
  );
}

// ---- one run ----
const D_FIELDS = [["dRealAfterPolice", "D(real)"], ["dFakeAfterCounterfeiter", "D(fake)"]];
const LOSS_FIELDS = [["policeLoss", "police loss"], ["counterfeiterLoss", "counterfeiter loss"]];
const longRows = (history, fields, run) =>
  history.flatMap((r) =>
    fields.map(([f, label]) => ({ iteration: r.iteration, value: r[f], series: label, run }))
  );

function lineSpec(title, yTitle, { byRun = false, rule = null } = {}) {
  const layers = [{
    mark: { type: "line", strokeWidth: 1.2 },
    encoding: {
      x: { field: "iteration", type: "quantitative", scale: { nice: false } },
      y: { field: "value", type: "quantitative", title: yTitle },
      color: {
        field: byRun ? "run" : "series",
        type: "nominal",
        legend: { orient: "bottom", labelLimit: 0 },
      },
      ...(byRun ? { strokeDash: { field: "series", type: "nominal" } } : {}),
    },
  }];
  if (rule !== null) {
    layers.push({
      data: { values: [{ y: rule }] },
      mark: { type: "rule", color: "#888", strokeDash: [4, 4] },
      encoding: { y: { field: "y", type: "quantitative" } },
    });
  }
  return { title, data: { name: "rows" }, layer: layers };
}

function checkpointSpec(rows, byRun) {
  return {
    title: "Frechet distance per checkpoint (lower is better)",
    data: { values: rows.filter((r) => r.iteration !== "final") },
    mark: { type: "line", point: true },
    encoding: {
      x: { field: "iteration", type: "quantitative" },
      y: { field: "frechet", type: "quantitative", title: "Frechet distance" },
      ...(byRun
        ? { color: { field: "run", type: "nominal", legend: { orient: "bottom", labelLimit: 0 } } }
        : {}),
    },
  };
}

async function runPage(main, name) {
  let data = await getJson(`/api/run/${encodeURIComponent(name)}`);
  const dEl = h("div", { class: "plot", id: "d-plot" }), lossEl = h("div", { class: "plot" });
  const ckEl = h("div", { class: "plot" }), gridsEl = h("div", { class: "grids" });
  const head = h("p", { class: "sub", id: "state" });
  const summaryEl = h("div");
  main.replaceChildren(
    h("h1", {}, name),
    head,
    summaryEl,
    h("h2", {}, "D(real) and D(fake)"),
    dEl,
    h("h2", {}, "Losses"),
    lossEl,
    h("h2", {}, "Checkpoints"),
    ckEl,
    gridsEl,
    h("h2", {}, "Config"),
    h("pre", { id: "config" }, JSON.stringify(data.config, null, 1) ?? ""),
  );
  const dView = await embed(dEl, lineSpec("", "mean police output", { rule: 0.5 }));
  const lossView = await embed(lossEl, lineSpec("", "loss"));
  let count = 0;
  const add = (rows) => {
    if (!rows.length) return;
    dView.insert("rows", longRows(rows, D_FIELDS, name)).run();
    lossView.insert("rows", longRows(rows, LOSS_FIELDS, name)).run();
    count += rows.length;
    dEl.dataset.rows = String(count);
    dEl.dataset.lastDrawn = String(Date.now());
  };
  const showState = () => {
    const at = data.history.length ? "" : "";
    head.textContent = `${data.state}${
      data.state === "running"
        ? `: ${data.stage ?? ""}, iteration ${count}/${data.iterations ?? "?"}`
        : ""
    }${data.error ? `: ${data.error}` : ""}${at}`;
    head.className = `sub st-${data.state}`;
    summaryEl.replaceChildren(
      summaryTable(data),
      data.report
        ? h("p", {}, h("a", { href: data.report }, "the static report (report.html)"))
        : "",
    );
  };
  const showCheckpoints = async () => {
    if (data.checkpoints.length) await embed(ckEl, checkpointSpec(data.checkpoints, false));
    gridsEl.replaceChildren(
      ...data.grids.map((g) =>
        h(
          "figure",
          {},
          h("img", { src: g.url, alt: `samples at ${g.iteration}` }),
          h("figcaption", {}, String(g.iteration)),
        )
      ),
    );
  };
  add(data.history);
  showState();
  await showCheckpoints();
  let shownCheckpoints = data.checkpoints.length + data.grids.length;
  while (data.state === "running") {
    await new Promise((r) => setTimeout(r, 500));
    try {
      data = await getJson(`/api/run/${encodeURIComponent(name)}?since=${count}`);
    } catch {
      continue;
    }
    add(data.history);
    showState();
    if (data.checkpoints.length + data.grids.length !== shownCheckpoints) {
      shownCheckpoints = data.checkpoints.length + data.grids.length;
      await showCheckpoints();
    }
  }
  // finished while watched: the sealed figures
  if (data.history.length === 0 && count > 0) {
    data = await getJson(`/api/run/${encodeURIComponent(name)}?since=${count}`);
    add(data.history);
    showState();
    await showCheckpoints();
  }
  main.dataset.state = data.state;
  // a finished run: its static report below, whole (histogram, run record, goal table)
  if (data.report) {
    main.append(
      h("h2", {}, "The static report"),
      h("iframe", { src: data.report, class: "report", loading: "lazy", title: "report.html" }),
    );
  }
}

function summaryTable(data) {
  const s = data.summary;
  if (!s) return h("p", { class: "sub" }, "no evaluation yet");
  const keys = [
    "goalMarksMet",
    "frechet",
    "bestFrechet",
    "tailFrechet",
    "classifierScore",
    "classesCovered",
    "dReal",
    "dFake",
  ];
  return h(
    "table",
    { class: "grid small" },
    h("tr", {}, keys.map((k) => h("th", {}, k))),
    h("tr", {}, keys.map((k) => h("td", {}, fmt(s[k])))),
  );
}

// ---- compare ----
async function comparePage(main, names) {
  const runs = await Promise.all(names.map((n) => getJson(`/api/run/${encodeURIComponent(n)}`)));
  const dEl = h("div", { class: "plot", id: "compare-d" }),
    lossEl = h("div", { class: "plot" }),
    ckEl = h("div", { class: "plot" });
  const flat = (cfg, p = "", out = {}) => {
    if (cfg && typeof cfg === "object" && !Array.isArray(cfg)) {
      for (const [k, v] of Object.entries(cfg)) {
        flat(v, p ? `${p}.${k}` : k, out);
      }
    } else out[p] = cfg;
    return out;
  };
  const flats = runs.map((r) => flat(r.config ?? {}));
  const paths = [...new Set(flats.flatMap(Object.keys))].filter((p) =>
    p !== "name" && new Set(flats.map((f) => JSON.stringify(f[p] ?? null))).size > 1
  ).sort();
  const iterations = runs.map((r) => new Set(r.grids.map((g) => String(g.iteration))));
  const common = [...iterations[0]].filter((i) => iterations.every((s) => s.has(i)));
  main.replaceChildren(
    h("h1", {}, `Compare ${names.length} runs`),
    h(
      "p",
      { class: "sub" },
      names.map((n, i) => [i ? ", " : "", h("a", { href: `/run/${encodeURIComponent(n)}` }, n)]),
    ),
    h("h2", {}, "D(real) and D(fake)"),
    dEl,
    h("h2", {}, "Losses"),
    lossEl,
    h("h2", {}, "Frechet distance per checkpoint"),
    ckEl,
    h("h2", {}, "Final figures"),
    h(
      "table",
      { class: "grid small" },
      h(
        "tr",
        {},
        h("th", {}, "run"),
        [
          "goalMarksMet",
          "frechet",
          "bestFrechet",
          "classifierScore",
          "classesCovered",
          "dReal",
          "dFake",
        ].map((k) => h("th", {}, k)),
      ),
      runs.map((r) =>
        h(
          "tr",
          {},
          h("td", {}, r.run),
          [
            "goalMarksMet",
            "frechet",
            "bestFrechet",
            "classifierScore",
            "classesCovered",
            "dReal",
            "dFake",
          ].map((k) => h("td", {}, fmt(r.summary?.[k]))),
        )
      ),
    ),
    h("h2", {}, "Samples at matching iterations"),
    h(
      "table",
      { class: "grid samples" },
      h("tr", {}, h("th", {}, "iteration"), names.map((n) => h("th", {}, n))),
      common.map((it) =>
        h(
          "tr",
          {},
          h("td", {}, it),
          runs.map((r) =>
            h(
              "td",
              {},
              h("img", {
                src: r.grids.find((g) => String(g.iteration) === it).url,
                alt: `${r.run} at ${it}`,
              }),
            )
          ),
        )
      ),
    ),
    h("h2", {}, "Config differences"),
    paths.length
      ? h(
        "table",
        { class: "grid small", id: "config-diff" },
        h("tr", {}, h("th", {}, "field"), names.map((n) => h("th", {}, n))),
        paths.map((p) => h("tr", {}, h("td", {}, p), flats.map((f) => h("td", {}, fmt(f[p]))))),
      )
      : h("p", { class: "sub" }, "the same config"),
  );
  const values = (fields) => runs.flatMap((r) => longRows(r.history, fields, r.run));
  const dView = await embed(dEl, lineSpec("", "mean police output", { byRun: true, rule: 0.5 }));
  dView.insert("rows", values(D_FIELDS)).run();
  dEl.dataset.runs = String(new Set(values(D_FIELDS).map((r) => r.run)).size);
  const lossView = await embed(lossEl, lineSpec("", "loss", { byRun: true }));
  lossView.insert("rows", values(LOSS_FIELDS)).run();
  await embed(
    ckEl,
    checkpointSpec(runs.flatMap((r) => r.checkpoints.map((c) => ({ ...c, run: r.run }))), true),
  );
}

// ---- one sweep ----
async function sweepPage(main, name) {
  for (;;) {
    const s = await getJson(`/api/sweep/${encodeURIComponent(name)}`);
    drawSweep(main, s);
    if (!s.points.some((p) => p.status === "running" || p.status === "queued")) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function pointStatus(p) {
  if (p.status === "running") {
    return p.progress
      ? `running: ${p.stage} ${p.progress.iteration}/${p.progress.of}`
      : `running: ${p.stage ?? "starting"}`;
  }
  if (p.status === "failed") return `failed: ${p.error ?? ""}`;
  if (p.stopped) return p.stopped; // the search's own words: "stopped at rung 0 (20): ..."
  return p.status;
}

/** The goal marks per setting over its seeds: mean (range), whether the mean meets it, k of n. */
function goalTable(goals) {
  if (!goals?.length) return [];
  const head = h(
    "tr",
    {},
    h("th", {}, "setting"),
    h("th", {}, "seeds"),
    h("th", {}, "marks the mean meets"),
    ...goals[0].marks.map((m) => h("th", { title: m.target }, m.name)),
  );
  const rows = goals.map((g) =>
    h(
      "tr",
      { class: "goal-row" },
      h("td", {}, g.setting),
      h("td", {}, String(g.seeds)),
      h("td", { class: "goal-mean-met" }, `${g.meanMet} of ${g.marks.length}`),
      ...g.marks.map((m) => {
        const mean = m.values.reduce((a, b) => a + b, 0) / m.values.length;
        const range = m.values.length > 1
          ? ` (${fmt(Math.min(...m.values))} to ${fmt(Math.max(...m.values))})`
          : "";
        return h(
          "td",
          { class: m.meanMet ? "met" : "missed" },
          `${fmt(mean)}${range}; met on ${m.met} of ${m.values.length}`,
        );
      }),
    )
  );
  return [
    h("h2", {}, "Goal marks per setting, over its seeds"),
    h("table", { id: "goals" }, h("thead", {}, head), h("tbody", {}, ...rows)),
  ];
}

async function drawSweep(main, s) {
  const scatterEl = h("div", { class: "plot" }), parEl = h("div", { class: "plot" });
  const rows = s.points;
  const cols = [
    {
      key: "label",
      label: "point",
      cell: (p) => p.run ? h("a", { href: `/run/${encodeURIComponent(p.run)}` }, p.label) : p.label,
      sort: (p) => p.label,
    },
    ...s.knobs.map((k) => ({
      key: k,
      label: k.split(".").at(-1),
      title: k,
      cell: (p) => fmt(p.overrides[k]),
      sort: (p) => p.overrides[k] ?? null,
    })),
    {
      key: "status",
      label: "status",
      cell: (p) => h("span", { class: `st-${p.status} point-status` }, pointStatus(p)),
      sort: (p) => p.status,
      text: (p) => pointStatus(p),
    },
    {
      key: "metric",
      label: s.metric,
      cell: (p) => fmt(p.figures[s.metric]),
      sort: (p) => p.figures[s.metric] ?? null,
    },
    ...(s.search
      ? s.search.rungs.map((r, i) => ({
        key: `r${i}`,
        label: `rung ${i} (${r})`,
        cell: (p) => fmt(p.rungFigures?.[i]),
        sort: (p) => p.rungFigures?.[i] ?? null,
      }))
      : []),
  ];
  const prev = main.querySelector(".filter")?.value ?? "";
  main.replaceChildren(
    h("h1", {}, `Sweep ${s.name}`),
    h(
      "p",
      { class: "sub" },
      `${rows.length} points; ranked by ${s.metric} (${
        s.higherIsBetter ? "higher" : "lower"
      } is better)${
        s.search
          ? `; halving, rungs ${
            s.search.rungs.join(", ")
          } of ${s.resource}: each point's figure is at the furthest rung it reached`
          : ""
      }; `,
      h("a", { href: s.report }, "static report"),
    ),
    table(rows, cols),
    ...goalTable(s.goals),
    h("h2", {}, `Knobs against ${s.metric}`),
    parEl,
    scatterEl,
  );
  const f = main.querySelector(".filter");
  if (f && prev) {
    f.value = prev;
    f.dispatchEvent(new Event("input"));
  }
  const knobs = s.knobs.filter((k) => rows.some((p) => typeof p.overrides[k] === "number"));
  const done = rows.filter((p) => p.figures[s.metric] !== undefined);
  if (!done.length || !knobs.length) return;
  const long = done.flatMap((p) =>
    [...knobs, s.metric].map((k) => ({
      point: p.label,
      axis: k.split(".").at(-1),
      value: k === s.metric ? p.figures[s.metric] : p.overrides[k],
      metric: p.figures[s.metric],
    }))
  );
  await embed(parEl, {
    title: "parallel coordinates (each line a point; values scaled per axis)",
    data: { values: long },
    transform: [
      {
        joinaggregate: [{ op: "min", field: "value", as: "lo" }, {
          op: "max",
          field: "value",
          as: "hi",
        }],
        groupby: ["axis"],
      },
      {
        calculate: "datum.hi > datum.lo ? (datum.value - datum.lo) / (datum.hi - datum.lo) : 0.5",
        as: "scaled",
      },
    ],
    mark: { type: "line", point: true },
    encoding: {
      x: {
        field: "axis",
        type: "nominal",
        sort: [...knobs.map((k) => k.split(".").at(-1)), s.metric],
        title: null,
        axis: { labelAngle: 0, orient: "top" },
      },
      y: { field: "scaled", type: "quantitative", axis: null },
      detail: { field: "point" },
      color: {
        field: "metric",
        type: "quantitative",
        title: s.metric,
        scale: { scheme: "viridis", reverse: !s.higherIsBetter },
      },
      tooltip: [{ field: "point" }, { field: "axis" }, { field: "value" }],
    },
  });
  await embed(scatterEl, {
    data: {
      values: done.flatMap((p) =>
        knobs.map((k) => ({
          point: p.label,
          knob: k.split(".").at(-1),
          x: p.overrides[k],
          y: p.figures[s.metric],
        }))
      ),
    },
    facet: { field: "knob", type: "nominal", title: null },
    columns: 3,
    spec: {
      width: 220,
      height: 160,
      mark: { type: "point", filled: true },
      encoding: {
        x: { field: "x", type: "quantitative", scale: { zero: false }, title: null },
        y: { field: "y", type: "quantitative", title: s.metric },
        tooltip: [{ field: "point" }, { field: "x" }, { field: "y" }],
      },
    },
    resolve: { scale: { x: "independent" } },
  });
}

// ---- boot ----
addEventListener("DOMContentLoaded", async () => {
  const main = $("#app");
  const page = main.dataset.page, arg = main.dataset.arg;
  try {
    if (page === "runs") await runsPage(main);
    if (page === "run") await runPage(main, arg);
    if (page === "compare") await comparePage(main, arg.split(",").filter(Boolean));
    if (page === "sweep") await sweepPage(main, arg);
    main.dataset.ready = "1";
  } catch (e) {
    main.append(h("p", { class: "error" }, `error: ${e.message}`));
    main.dataset.ready = "error";
  }
});
