// @ts-check
/// <reference lib="dom" />
// The dashboard's pages, in the browser: they fetch the server's JSON and draw tables and
// Vega-Lite plots (vega-embed, served from the installed packages). A running run's page polls
// for new rows every half second and inserts them into the open plots; a running sweep's page
// polls every second and updates its table and its plots' data in place. Type-checked by
// `deno task check` against the server's own types (data.ts).
"use strict";

/** @typedef {Awaited<ReturnType<typeof import("./data.ts").runsList>>} RunsList */
/** @typedef {RunsList["runs"][number]} RunsRow */
/** @typedef {Awaited<ReturnType<typeof import("./data.ts").sweepsList>>[number]} SweepSummary */
/** @typedef {NonNullable<Awaited<ReturnType<typeof import("./data.ts").runDetail>>>} RunDetail */
/** @typedef {NonNullable<Awaited<ReturnType<typeof import("./data.ts").sweepDetail>>>} Sweep */
/** @typedef {Sweep["points"][number]} SweepPoint */
/** @typedef {NonNullable<Sweep["goals"]>[number]} SettingGoals */
/**
 * What the pages use of a Vega view.
 * @typedef {{
 *   insert(name: string, rows: object[]): VegaView,
 *   data(name: string, rows: object[]): VegaView,
 *   run(): VegaView,
 *   runAsync(): Promise<VegaView>,
 * }} VegaView
 */
/** @typedef {Node | string | number | null | undefined | unknown[]} Kid */
/** @typedef {Record<string, string | ((e: Event) => void)>} Attrs */
/**
 * A column of {@link table}: its cell, and how it sorts and filters.
 * @template R
 * @typedef {{
 *   key: string,
 *   label: string,
 *   title?: string,
 *   cell(row: R): Kid,
 *   sort?(row: R): string | number | null | undefined,
 *   text?(row: R): string,
 * }} Column
 */

/**
 * @param {string} sel
 * @returns {HTMLElement}
 */
const $ = (sel) => /** @type {HTMLElement} */ (document.querySelector(sel));

/**
 * An element with attributes (`on...` ones are listeners) and children.
 * @param {string} tag
 * @param {Attrs} [attrs]
 * @param {Kid[]} kids
 * @returns {HTMLElement}
 */
const h = (tag, attrs = {}, ...kids) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v);
  }
  append(el, kids);
  return el;
};

/**
 * @param {HTMLElement} el
 * @param {unknown} kid
 */
function append(el, kid) {
  if (kid === null || kid === undefined) return;
  if (Array.isArray(kid)) kid.forEach((k) => append(el, k));
  else el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
}

/**
 * A value as the tables show it: numbers to 4 significant digits.
 * @param {unknown} v
 */
const fmt = (v) =>
  v === null || v === undefined
    ? ""
    : typeof v === "number"
    ? (Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4))))
    : typeof v === "object"
    ? JSON.stringify(v)
    : String(v);

/**
 * @template T
 * @param {string} url
 * @returns {Promise<T>}
 */
const getJson = async (url) => {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(`${url}: ${r.status} ${await r.text()}`);
  return r.json();
};

/** @param {number | null | undefined} s */
const secs = (s) =>
  s === null || s === undefined ? "" : s < 60 ? `${s.toFixed(1)} s` : `${(s / 60).toFixed(1)} min`;

/** @param {{ status: string, stage: string | null, progress: { iteration: number, of: number } | null }} r */
const statusText = (r) =>
  r.status === "running" && r.progress
    ? `running: ${r.stage} ${r.progress.iteration}/${r.progress.of}`
    : r.status === "running"
    ? `running: ${r.stage ?? ""}`
    : r.status;

/** @param {number} ms */
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const VL = "https://vega.github.io/schema/vega-lite/v6.json";

/**
 * Draws a Vega-Lite spec into `el`; returns its view, whose named data can change later.
 * @param {HTMLElement} el
 * @param {Record<string, unknown>} spec
 * @returns {Promise<VegaView>}
 */
const embed = async (el, spec) => {
  /** @type {(el: HTMLElement, spec: object, opts: object) => Promise<{ view: VegaView }>} */
  const vegaEmbed = /** @type {any} */ (globalThis).vegaEmbed;
  // composed specs size their cells themselves ("container" only works for single views)
  const composed = ["facet", "concat", "hconcat", "vconcat", "repeat"].some((k) => k in spec);
  const size = composed ? {} : { width: "container", height: 220 };
  const res = await vegaEmbed(el, { $schema: VL, ...size, ...spec }, {
    renderer: "svg",
    // PNG and SVG downloads in the chart's menu; nothing that goes online (the editor)
    actions: { export: true, source: false, compiled: false, editor: false },
  });
  return res.view;
};

/**
 * A table's view as a page address keeps it: the filter text and the sort.
 * @typedef {{ query: string, sort: string | null, desc: boolean }} TableState
 */

/** The rows a table draws at first. */
const PAGE_ROWS = 500;

/**
 * Draws `page` (the first rows of a view of `matched` rows) into `tbl` under `headers`, with a
 * button for more (`more`) when some are not drawn; the table says both counts.
 * @template R
 * @param {HTMLElement} tbl
 * @param {HTMLElement[]} headers
 * @param {Column<R>[]} cols
 * @param {R[]} page
 * @param {number} matched
 * @param {(row: R) => string} rowId
 * @param {() => void} more
 */
function drawRows(tbl, headers, cols, page, matched, rowId, more) {
  const left = matched - page.length;
  const moreButton = h(
    "button",
    { class: "more", onclick: more },
    `show ${Math.min(left, 10 * PAGE_ROWS)} more (${left} not drawn)`,
  );
  tbl.replaceChildren(
    h("thead", {}, h("tr", {}, headers)),
    h(
      "tbody",
      {},
      page.map((r) => h("tr", { "data-run": rowId(r) }, cols.map((c) => h("td", {}, c.cell(r))))),
      left > 0 ? h("tr", {}, h("td", { colspan: String(cols.length) }, moreButton)) : [],
    ),
  );
  tbl.dataset.rows = String(matched);
  tbl.dataset.drawn = String(page.length);
}

/**
 * A sortable, filterable table of rows the page holds (a sweep's points); the runs page's,
 * which the server pages, is {@link remoteTable}. `update(rows)` redraws it with new rows,
 * keeping the sort and the filter (words a row contains). `onState` hears every change of
 * the view.
 * @template R
 * @param {R[]} rows
 * @param {Column<R>[]} cols
 * @param {{ filter?: boolean, onRender?: () => void, rowId?: (row: R) => string,
 *   initial?: Partial<TableState>, onState?: (s: TableState) => void }} [options]
 */
function table(
  rows,
  cols,
  { filter = true, onRender, rowId = () => "", initial = {}, onState } = {},
) {
  /** @type {string | null} */
  let sortCol = initial.sort ?? null;
  let desc = initial.desc ?? false, query = (initial.query ?? "").toLowerCase();
  const wrap = h("div");
  const input = /** @type {HTMLInputElement} */ (h("input", {
    type: "search",
    placeholder: "filter",
    class: "filter",
  }));
  input.value = initial.query ?? "";
  const state = () => onState?.({ query: input.value, sort: sortCol, desc });
  input.addEventListener("input", () => {
    query = input.value.toLowerCase();
    draw();
    state();
  });
  const tbl = h("table", { class: "grid" });
  if (filter) wrap.append(input);
  wrap.append(tbl);
  /** @param {R} r */
  const matches = (r) =>
    !query ||
    cols.some((c) => String(c.text ? c.text(r) : c.sort?.(r) ?? "").toLowerCase().includes(query));
  /** @param {Column<R>} c */
  const header = (c) =>
    h("th", {
      title: c.title ?? c.label,
      onclick: () => {
        if (!c.sort) return;
        desc = sortCol === c.key ? !desc : false;
        sortCol = c.key;
        draw();
        state();
      },
    }, c.label + (sortCol === c.key ? (desc ? " \u25bc" : " \u25b2") : ""));
  // rows drawn: the first PAGE_ROWS of the view, more on request (100k rows of DOM take
  // seconds to draw; the filter and the sort still see every row)
  let limit = PAGE_ROWS;
  function draw() {
    const shown = rows.filter(matches);
    const c = cols.find((c) => c.key === sortCol);
    if (c?.sort) shown.sort((a, b) => compare(c.sort?.(a), c.sort?.(b)) * (desc ? -1 : 1));
    drawRows(tbl, cols.map(header), cols, shown.slice(0, limit), shown.length, rowId, () => {
      limit += 10 * PAGE_ROWS;
      draw();
    });
    onRender?.();
  }
  draw();
  return {
    el: wrap,
    /** @param {R[]} next */
    update(next) {
      rows = next;
      draw();
    },
  };
}

/**
 * A table whose rows the server pages, sorts and filters (the runs page: 100k runs are not
 * sent to the page). `load(state, limit)` answers the first `limit` rows of a view; a newer
 * view's answer wins over an older one still on its way.
 * @template R
 * @param {Column<R>[]} cols
 * @param {(s: TableState, limit: number) => Promise<{ rows: R[], matched: number,
 *   error: string | null }>} load
 * @param {{ onRender?: () => void, rowId?: (row: R) => string, initial?: Partial<TableState>,
 *   onState?: (s: TableState) => void }} [options]
 */
function remoteTable(cols, load, { onRender, rowId = () => "", initial = {}, onState } = {}) {
  /** @type {TableState} */
  const st = { query: initial.query ?? "", sort: initial.sort ?? null, desc: !!initial.desc };
  let limit = PAGE_ROWS, asked = 0;
  const wrap = h("div");
  const input = /** @type {HTMLInputElement} */ (h("input", {
    type: "search",
    placeholder: "filter: words, or a query like frechet < 100 and seed = 2",
    class: "filter",
  }));
  input.value = st.query;
  const problem = h("span", { class: "error query-error" });
  const tbl = h("table", { class: "grid" });
  wrap.append(input, " ", problem, tbl);
  /** @param {Column<R>} c */
  const header = (c) =>
    h("th", {
      title: c.title ?? c.label,
      onclick: () => {
        if (!c.sort) return;
        st.desc = st.sort === c.key ? !st.desc : false;
        st.sort = c.key;
        refresh();
      },
    }, c.label + (st.sort === c.key ? (st.desc ? " \u25bc" : " \u25b2") : ""));
  async function refresh() {
    const mine = ++asked;
    const answer = await load({ ...st }, limit);
    if (mine !== asked) return; // a newer view is on its way
    problem.textContent = answer.error ?? "";
    drawRows(tbl, cols.map(header), cols, answer.rows, answer.matched, rowId, () => {
      limit += 10 * PAGE_ROWS;
      refresh();
    });
    onState?.({ ...st });
    onRender?.();
  }
  input.addEventListener("input", () => {
    st.query = input.value;
    limit = PAGE_ROWS;
    refresh();
  });
  return { el: wrap, ready: refresh() };
}

/**
 * Keeps `params` in the page's address (without a reload), so a view can be shared or
 * reloaded; empty values are left out.
 * @param {Record<string, string | null | undefined>} params
 */
function setAddress(params) {
  const u = new URL(location.href);
  for (const [k, v] of Object.entries(params)) {
    if (v === null || v === undefined || v === "") u.searchParams.delete(k);
    else u.searchParams.set(k, v);
  }
  history.replaceState(null, "", u);
}

/**
 * Ascending order with empty values last.
 * @param {string | number | null | undefined} x
 * @param {string | number | null | undefined} y
 */
function compare(x, y) {
  if (x === y) return 0;
  if (x === null || x === undefined || x === "") return 1;
  if (y === null || y === undefined || y === "") return -1;
  return x < y ? -1 : 1;
}

// ---- runs ----

/**
 * The runs table's columns: selection, name, sweep, status, the knobs that differ, the figures.
 * @param {RunsList} data
 * @param {(run: string, on: boolean) => void} select
 * @returns {Column<RunsRow>[]}
 */
function runColumns(data, select) {
  return [
    {
      key: "sel",
      label: "",
      cell: (r) => {
        const box = /** @type {HTMLInputElement} */ (h("input", {
          type: "checkbox",
          "data-run": r.run,
        }));
        box.addEventListener("change", () => select(r.run, box.checked));
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
      label: p.split(".").at(-1) ?? p,
      title: p,
      /** @param {RunsRow} r */
      cell: (r) => fmt(r.params[p]),
      /** @param {RunsRow} r */
      sort: (r) => /** @type {string | number | null} */ (r.params[p] ?? null),
      /** @param {RunsRow} r */
      text: (r) => fmt(r.params[p]),
    })),
    ...data.metrics.map((m) => ({
      key: m,
      label: m,
      /** @param {RunsRow} r */
      cell: (r) => fmt(r.figures[m]),
      /** @param {RunsRow} r */
      sort: (r) => r.figures[m] ?? null,
    })),
    ...(data.tagged
      ? [{
        key: "tags",
        label: "tags",
        /** @param {RunsRow} r */
        cell: (r) => h("span", { title: r.note }, r.tags.join(", ") + (r.note ? " \u270e" : "")),
        /** @param {RunsRow} r */
        sort: (r) => r.tags.join(","),
        /** @param {RunsRow} r */
        text: (r) => `${r.tags.join(" ")} ${r.note}`,
      }]
      : []),
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
}

/** @param {SweepSummary[]} sweeps */
function sweepList(sweeps) {
  if (!sweeps.length) return h("p", { class: "sub" }, "none");
  return h(
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
  );
}

/**
 * The runs page's rows of a view: the first `limit`, sorted and filtered by the server.
 * @param {Partial<TableState>} st
 * @param {number} limit
 * @returns {Promise<RunsList>}
 */
async function runsOf(st, limit) {
  const u = new URLSearchParams({ offset: "0", limit: String(limit) });
  if (st.query) u.set("q", st.query);
  if (st.sort) u.set("sort", st.sort);
  if (st.desc) u.set("desc", "1");
  // a bad query answers 400 with its error in the same shape
  return (await fetch(`/api/runs?${u}`, { cache: "no-store" })).json();
}

/** @param {HTMLElement} main */
async function runsPage(main) {
  const params = new URLSearchParams(location.search);
  /** @type {TableState} */
  const initial = {
    query: params.get("q") ?? "",
    sort: params.get("sort"),
    desc: params.get("desc") === "1",
  };
  const [data, sweeps] = await Promise.all([
    runsOf(initial, PAGE_ROWS),
    /** @type {Promise<SweepSummary[]>} */ (getJson("/api/sweeps")),
  ]);
  const selected = new Set();
  const compareButton = h("button", { disabled: "", id: "compare" }, "compare selected");
  compareButton.addEventListener(
    "click",
    () => location.href = `/compare?runs=${[...selected].map(encodeURIComponent).join(",")}`,
  );
  /** @type {(run: string, on: boolean) => void} */
  const select = (run, on) => {
    on ? selected.add(run) : selected.delete(run);
    selected.size >= 2
      ? compareButton.removeAttribute("disabled")
      : compareButton.setAttribute("disabled", "");
  };
  // the first answer draws at once; later views are asked of the server
  let first = /** @type {RunsList | null} */ (data);
  const grid = remoteTable(
    runColumns(data, select),
    async (st, limit) => {
      const answer = first ?? await runsOf(st, limit);
      first = null;
      return { rows: answer.runs, matched: answer.matched, error: answer.error };
    },
    {
      rowId: (r) => r.run,
      // for the benchmark: when the table was first drawn, in ms since the navigation started
      onRender: () => main.dataset.painted ??= String(performance.now()),
      // the view lives in the address: ?q=...&sort=...&desc=1
      initial,
      onState: (st) => setAddress({ q: st.query, sort: st.sort, desc: st.desc ? "1" : null }),
    },
  );
  main.replaceChildren(
    h("h1", {}, "Runs"),
    h("p", { class: "sub" }, `${data.total} runs in ${data.results}; `, compareButton),
    grid.el,
    h("h2", {}, "Sweeps"),
    sweepList(sweeps),
  );
  await grid.ready;
}

// ---- one run ----

/** @typedef {[string, string][]} Fields */
/** @type {Fields} */
const D_FIELDS = [["dRealAfterPolice", "D(real)"], ["dFakeAfterCounterfeiter", "D(fake)"]];
/** @type {Fields} */
const LOSS_FIELDS = [["policeLoss", "police loss"], ["counterfeiterLoss", "counterfeiter loss"]];

/**
 * How the curves are drawn, shared by a page's charts and kept in its address: TensorBoard's
 * smoothing (an exponential moving average, debiased), the x axis, a log scale for losses.
 * @typedef {{ smooth: number, x: "iteration" | "time", logY: boolean }} CurveSettings
 */

/** @returns {CurveSettings} */
function curveSettings() {
  const q = new URLSearchParams(location.search);
  const saved = JSON.parse(localStorage.getItem("gan-curves") ?? "{}");
  const num = Number(q.get("smooth") ?? saved.smooth ?? 0.6);
  const logy = q.get("logy");
  return {
    smooth: Number.isFinite(num) ? Math.min(0.99, Math.max(0, num)) : 0.6,
    x: (q.get("x") ?? saved.x) === "time" ? "time" : "iteration",
    logY: logy === null ? saved.logY === true : logy === "1" || logy === "true",
  };
}

/**
 * A bar of controls for `settings`; `changed` redraws the charts.
 * @param {CurveSettings} settings
 * @param {() => void} changed
 */
function curveControls(settings, changed) {
  const save = () => {
    setAddress({
      smooth: String(settings.smooth),
      x: settings.x === "time" ? "time" : null,
      logy: settings.logY ? "1" : null,
    });
    localStorage.setItem("gan-curves", JSON.stringify(settings));
    changed();
  };
  const slider = /** @type {HTMLInputElement} */ (h("input", {
    type: "range",
    min: "0",
    max: "0.99",
    step: "0.01",
    id: "smooth",
  }));
  slider.value = String(settings.smooth);
  const shown = h("span", { id: "smooth-value" }, settings.smooth.toFixed(2));
  slider.addEventListener("change", () => {
    settings.smooth = Number(slider.value);
    shown.textContent = settings.smooth.toFixed(2);
    save();
  });
  const xSel = /** @type {HTMLSelectElement} */ (h(
    "select",
    { id: "x-axis" },
    h("option", { value: "iteration" }, "iteration"),
    h("option", { value: "time" }, "wall time (s)"),
  ));
  xSel.value = settings.x;
  xSel.addEventListener("change", () => {
    settings.x = xSel.value === "time" ? "time" : "iteration";
    save();
  });
  const log = /** @type {HTMLInputElement} */ (h("input", { type: "checkbox", id: "log-y" }));
  log.checked = settings.logY;
  log.addEventListener("change", () => {
    settings.logY = log.checked;
    save();
  });
  return h(
    "p",
    { class: "controls" },
    h("label", {}, "smoothing ", slider, " ", shown),
    h("label", {}, "x axis ", xSel),
    h("label", {}, log, " log scale for losses"),
    h(
      "span",
      { class: "sub" },
      " drag to pan, wheel to zoom, double-click to reset; click a legend entry to show one series",
    ),
  );
}

/**
 * A live chart of history curves: raw and smoothed lines, hover values, zoom and pan, a legend
 * that picks series, PNG/SVG from its menu and a CSV link. `add(rows)` appends history rows
 * (smoothing is causal: only new points are computed); `redraw()` applies new settings.
 * @param {HTMLElement} el
 * @param {{ fields: Fields, yTitle: string, byRun?: boolean, rule?: number | null,
 *   logAllowed?: boolean, settings: CurveSettings, name: string }} o
 */
function curveChart(el, o) {
  /** @type {Record<string, unknown>[]} */
  const rows = [];
  /** per run and series: [ema, steps] for smoothing; per run: seconds so far */
  const ema = new Map(), clock = new Map();
  const plotEl = h("div", { class: "plot-body" });
  const csv = h("a", { href: "#", class: "csv" }, "CSV");
  csv.addEventListener("click", (ev) => {
    ev.preventDefault();
    const head = "run,series,iteration,time,value,smoothed";
    const body = rows.map((r) => [r.run, r.series, r.iteration, r.time, r.raw, r.value].join(","));
    const a = h("a", {
      href: URL.createObjectURL(
        new Blob([[head, ...body].join("\n") + "\n"], { type: "text/csv" }),
      ),
      download: `${o.name}.csv`,
    });
    a.click();
  });
  el.replaceChildren(plotEl, h("div", { class: "plot-links" }, csv));
  /** @type {VegaView | null} */
  let view = null;
  const spec = () => {
    const w = o.settings.smooth;
    const x = o.settings.x === "time"
      ? { field: "time", type: "quantitative", title: "wall time (s)", scale: { nice: false } }
      : { field: "iteration", type: "quantitative", scale: { nice: false } };
    const colorField = o.byRun ? "run" : "series";
    const logScale = o.logAllowed && o.settings.logY ? { type: "log" } : {};
    const y = (/** @type {string} */ field) => ({
      field,
      type: "quantitative",
      title: o.yTitle,
      scale: logScale,
    });
    const color = {
      field: colorField,
      type: "nominal",
      legend: { orient: "bottom", labelLimit: 0 },
    };
    const dash = o.byRun ? { strokeDash: { field: "series", type: "nominal" } } : {};
    const picked = { param: "pick", value: 1, empty: true };
    /** @type {Record<string, unknown>[]} */
    const layers = [
      {
        // the raw curve, faint when smoothed; carries the zoom and the legend's pick
        params: [
          { name: "zoom", select: "interval", bind: "scales" },
          { name: "pick", select: { type: "point", fields: [colorField] }, bind: "legend" },
        ],
        mark: { type: "line", strokeWidth: 1 },
        encoding: {
          x,
          y: y("raw"),
          color,
          ...dash,
          opacity: { condition: { ...picked, value: w > 0 ? 0.25 : 1 }, value: 0.05 },
        },
      },
    ];
    if (w > 0) {
      layers.push({
        mark: { type: "line", strokeWidth: 1.8 },
        encoding: { x, y: y("value"), color, ...dash, opacity: { condition: picked, value: 0.05 } },
      });
    }
    // hover: the nearest point's values
    layers.push({
      params: [{
        name: "hover",
        select: { type: "point", on: "pointerover", nearest: true, clear: "pointerout" },
      }],
      mark: { type: "point", filled: true, size: 40 },
      encoding: {
        x,
        y: y(w > 0 ? "value" : "raw"),
        color,
        opacity: { condition: { param: "hover", value: 1, empty: false }, value: 0 },
        tooltip: [
          { field: colorField, type: "nominal" },
          ...(o.byRun ? [{ field: "series", type: "nominal" }] : []),
          { field: "iteration", type: "quantitative" },
          { field: "time", type: "quantitative", title: "wall time (s)", format: ".1f" },
          { field: "raw", type: "quantitative", title: "value", format: ".4g" },
          ...(w > 0
            ? [{ field: "value", type: "quantitative", title: "smoothed", format: ".4g" }]
            : []),
        ],
      },
    });
    if (o.rule !== null && o.rule !== undefined) {
      layers.push({
        data: { values: [{ y: o.rule }] },
        mark: { type: "rule", color: "#888", strokeDash: [4, 4] },
        encoding: { y: { field: "y", type: "quantitative" } },
      });
    }
    return { data: { name: "rows", values: rows }, layer: layers };
  };
  /** @param {Record<string, unknown>[]} history @param {string} run */
  const toRows = (history, run) => {
    const w = o.settings.smooth, out = [];
    for (const r of history) {
      const t = (clock.get(run) ?? 0) + (typeof r.seconds === "number" ? r.seconds : 0);
      clock.set(run, t);
      for (const [f, label] of o.fields) {
        const v = r[f];
        if (typeof v !== "number" || !Number.isFinite(v)) continue;
        if (o.logAllowed && o.settings.logY && v <= 0) continue;
        const key = `${run}\u0000${label}`;
        const [prev, n] = ema.get(key) ?? [0, 0];
        const next = w * prev + (1 - w) * v;
        ema.set(key, [next, n + 1]);
        out.push({
          iteration: r.iteration,
          time: Math.round(t * 1000) / 1000,
          raw: v,
          value: next / (1 - w ** (n + 1)), // debiased, as TensorBoard draws it
          series: label,
          run,
        });
      }
    }
    return out;
  };
  /** the history as given so far, per run, to recompute on a settings change */
  const given = new Map();
  return {
    /** @param {Record<string, unknown>[]} history @param {string} run */
    async add(history, run) {
      given.set(run, [...(given.get(run) ?? []), ...history]);
      const fresh = toRows(history, run);
      if (fresh.length === 0) return;
      rows.push(...fresh);
      // drawn once there is data: an empty chart makes vega warn about infinite extents
      if (!view) view = await embed(plotEl, spec());
      else view.insert("rows", fresh).run();
    },
    async redraw() {
      rows.length = 0;
      ema.clear();
      clock.clear();
      for (const [run, history] of given) rows.push(...toRows(history, run));
      if (rows.length) view = await embed(plotEl, spec());
    },
    rows,
  };
}

/**
 * @param {Record<string, unknown>[]} rows
 * @param {boolean} byRun
 */
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

/**
 * The figures the server names, in its order.
 * @param {RunDetail} data
 */
function summaryTable(data) {
  const s = data.summary;
  if (!s) return h("p", { class: "sub" }, "no evaluation yet");
  return h(
    "table",
    { class: "grid small" },
    h("tr", {}, data.figures.map((k) => h("th", {}, k))),
    h("tr", {}, data.figures.map((k) => h("td", {}, fmt(s[k])))),
  );
}

/** @param {RunDetail["grids"]} grids */
const gridFigures = (grids) =>
  grids.map((g) =>
    h(
      "figure",
      {},
      h("img", { src: g.url, alt: `samples at ${g.iteration}` }),
      h("figcaption", {}, String(g.iteration)),
    )
  );

/**
 * A run's page: its curves grow while it trains.
 * @param {HTMLElement} main
 * @param {string} name
 */
async function runPage(main, name) {
  const url = (since = 0) =>
    `/api/run/${encodeURIComponent(name)}${since ? `?since=${since}` : ""}`;
  /** @type {RunDetail} */
  let data = await getJson(url());
  const dEl = h("div", { class: "plot", id: "d-plot" }), lossEl = h("div", { class: "plot" });
  const ckEl = h("div", { class: "plot" }), gridsEl = h("div", { class: "grids" });
  const head = h("p", { class: "sub", id: "state" }), summaryEl = h("div");
  const controlsEl = h("div");
  main.replaceChildren(
    h("h1", {}, name),
    head,
    summaryEl,
    h("h2", {}, "D(real) and D(fake)"),
    controlsEl,
    dEl,
    h("h2", {}, "Losses"),
    lossEl,
    h("h2", {}, "Checkpoints"),
    ckEl,
    gridsEl,
    h("h2", {}, "Config"),
    h("pre", { id: "config" }, JSON.stringify(data.config, null, 1) ?? ""),
  );
  const settings = curveSettings();
  const dChart = curveChart(dEl, {
    fields: D_FIELDS,
    yTitle: "mean police output",
    rule: 0.5,
    settings,
    name: `${name}-d`,
  });
  const lossChart = curveChart(lossEl, {
    fields: LOSS_FIELDS,
    yTitle: "loss",
    logAllowed: true,
    settings,
    name: `${name}-loss`,
  });
  controlsEl.replaceChildren(
    curveControls(settings, () => Promise.all([dChart.redraw(), lossChart.redraw()])),
  );
  let count = 0, shownCheckpoints = -1;
  const show = async () => {
    if (data.history.length) {
      await dChart.add(data.history, name);
      await lossChart.add(data.history, name);
      count += data.history.length;
      dEl.dataset.rows = String(count);
      dEl.dataset.lastDrawn = String(Date.now());
    }
    head.textContent = `${data.state}${
      data.state === "running"
        ? `: ${data.stage ?? ""}, iteration ${count}/${data.iterations ?? "?"}`
        : ""
    }${data.error ? `: ${data.error}` : ""}`;
    head.className = `sub st-${data.state}`;
    summaryEl.replaceChildren(
      summaryTable(data),
      data.report
        ? h("p", {}, h("a", { href: data.report }, "the static report (report.html)"))
        : "",
    );
    if (data.checkpoints.length + data.grids.length !== shownCheckpoints) {
      shownCheckpoints = data.checkpoints.length + data.grids.length;
      if (data.checkpoints.length) await embed(ckEl, checkpointSpec(data.checkpoints, false));
      gridsEl.replaceChildren(...gridFigures(data.grids));
    }
  };
  await show();
  while (data.state === "running") {
    await sleep(500);
    try {
      data = await getJson(url(count));
    } catch {
      continue;
    }
    await show();
  }
  // finished while watched: the sealed figures
  if (data.history.length === 0 && count > 0) {
    data = await getJson(url(count));
    shownCheckpoints = -1;
    await show();
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

// ---- compare ----

/**
 * A config as `path -> value`, nested objects flattened.
 * @param {unknown} cfg
 * @param {string} [p]
 * @param {Record<string, unknown>} [out]
 */
function flatten(cfg, p = "", out = {}) {
  if (cfg && typeof cfg === "object" && !Array.isArray(cfg)) {
    for (const [k, v] of Object.entries(cfg)) flatten(v, p ? `${p}.${k}` : k, out);
  } else out[p] = cfg;
  return out;
}

/**
 * The fields whose values differ between the runs, as a table.
 * @param {RunDetail[]} runs
 */
function configDiff(runs) {
  const flats = runs.map((r) => flatten(r.config ?? {}));
  const paths = [...new Set(flats.flatMap(Object.keys))].filter((p) =>
    p !== "name" && new Set(flats.map((f) => JSON.stringify(f[p] ?? null))).size > 1
  ).sort();
  if (!paths.length) return h("p", { class: "sub" }, "the same config");
  return h(
    "table",
    { class: "grid small", id: "config-diff" },
    h("tr", {}, h("th", {}, "field"), runs.map((r) => h("th", {}, r.run))),
    paths.map((p) => h("tr", {}, h("td", {}, p), flats.map((f) => h("td", {}, fmt(f[p]))))),
  );
}

/**
 * The runs' final figures side by side (the server's figure list).
 * @param {RunDetail[]} runs
 */
function figuresTable(runs) {
  const keys = runs[0]?.figures ?? [];
  return h(
    "table",
    { class: "grid small" },
    h("tr", {}, h("th", {}, "run"), keys.map((k) => h("th", {}, k))),
    runs.map((r) =>
      h("tr", {}, h("td", {}, r.run), keys.map((k) => h("td", {}, fmt(r.summary?.[k]))))
    ),
  );
}

/**
 * Sample grids at the iterations every run has.
 * @param {RunDetail[]} runs
 */
function samplesTable(runs) {
  const iterations = runs.map((r) => new Set(r.grids.map((g) => String(g.iteration))));
  const common = [...(iterations[0] ?? [])].filter((i) => iterations.every((s) => s.has(i)));
  /** @param {RunDetail} r @param {string} it */
  const img = (r, it) =>
    h("img", {
      src: r.grids.find((g) => String(g.iteration) === it)?.url ?? "",
      alt: `${r.run} at ${it}`,
    });
  return h(
    "table",
    { class: "grid samples" },
    h("tr", {}, h("th", {}, "iteration"), runs.map((r) => h("th", {}, r.run))),
    common.map((it) => h("tr", {}, h("td", {}, it), runs.map((r) => h("td", {}, img(r, it))))),
  );
}

/**
 * @param {HTMLElement} main
 * @param {string[]} names
 */
async function comparePage(main, names) {
  /** @type {RunDetail[]} */
  const runs = await Promise.all(names.map((n) => getJson(`/api/run/${encodeURIComponent(n)}`)));
  const dEl = h("div", { class: "plot", id: "compare-d" }),
    lossEl = h("div", { class: "plot" }),
    ckEl = h("div", { class: "plot" });
  const controlsEl = h("div");
  main.replaceChildren(
    h("h1", {}, `Compare ${names.length} runs`),
    h(
      "p",
      { class: "sub" },
      names.map((n, i) => [i ? ", " : "", h("a", { href: `/run/${encodeURIComponent(n)}` }, n)]),
    ),
    h("h2", {}, "D(real) and D(fake)"),
    controlsEl,
    dEl,
    h("h2", {}, "Losses"),
    lossEl,
    h("h2", {}, "Frechet distance per checkpoint"),
    ckEl,
    h("h2", {}, "Final figures"),
    figuresTable(runs),
    h("h2", {}, "Samples at matching iterations"),
    samplesTable(runs),
    h("h2", {}, "Config differences"),
    configDiff(runs),
  );
  const settings = curveSettings();
  const common = { byRun: true, settings, name: "compare" };
  const dChart = curveChart(dEl, {
    ...common,
    fields: D_FIELDS,
    yTitle: "mean police output",
    rule: 0.5,
  });
  const lossChart = curveChart(lossEl, {
    ...common,
    fields: LOSS_FIELDS,
    yTitle: "loss",
    logAllowed: true,
  });
  controlsEl.replaceChildren(
    curveControls(settings, () => Promise.all([dChart.redraw(), lossChart.redraw()])),
  );
  for (const r of runs) {
    await dChart.add(r.history, r.run);
    await lossChart.add(r.history, r.run);
  }
  dEl.dataset.runs = String(new Set(dChart.rows.map((r) => r.run)).size);
  await embed(
    ckEl,
    checkpointSpec(runs.flatMap((r) => r.checkpoints.map((c) => ({ ...c, run: r.run }))), true),
  );
}

// ---- one sweep ----

/** @param {SweepPoint} p */
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

/**
 * The goal marks per setting over its seeds: mean (range), whether the mean meets it, k of n.
 * @param {SettingGoals[]} goals
 */
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
  /** @param {SettingGoals["marks"][number]} m */
  const cell = (m) => {
    const mean = m.values.reduce((a, b) => a + b, 0) / m.values.length;
    const range = m.values.length > 1
      ? ` (${fmt(Math.min(...m.values))} to ${fmt(Math.max(...m.values))})`
      : "";
    return h(
      "td",
      { class: m.meanMet ? "met" : "missed" },
      `${fmt(mean)}${range}; met on ${m.met} of ${m.values.length}`,
    );
  };
  const rows = goals.map((g) =>
    h(
      "tr",
      { class: "goal-row" },
      h("td", {}, g.setting),
      h("td", {}, String(g.seeds)),
      h("td", { class: "goal-mean-met" }, `${g.meanMet} of ${g.marks.length}`),
      ...g.marks.map(cell),
    )
  );
  return [
    h("h2", {}, "Goal marks per setting, over its seeds"),
    h("table", { id: "goals" }, h("thead", {}, head), h("tbody", {}, ...rows)),
  ];
}

/**
 * The sweep table's columns: point, knobs, status, the rank figure, the rungs' figures.
 * @param {Sweep} s
 * @returns {Column<SweepPoint>[]}
 */
function pointColumns(s) {
  return [
    {
      key: "label",
      label: "point",
      cell: (p) => p.run ? h("a", { href: `/run/${encodeURIComponent(p.run)}` }, p.label) : p.label,
      sort: (p) => p.label,
    },
    ...s.knobs.map((k) => ({
      key: k,
      label: k.split(".").at(-1) ?? k,
      title: k,
      /** @param {SweepPoint} p */
      cell: (p) => fmt(p.overrides[k]),
      /** @param {SweepPoint} p */
      sort: (p) => /** @type {string | number | null} */ (p.overrides[k] ?? null),
    })),
    {
      key: "status",
      label: "status",
      cell: (p) => h("span", { class: `st-${p.status} point-status` }, pointStatus(p)),
      sort: (p) => p.status,
      text: pointStatus,
    },
    {
      key: "metric",
      label: s.metric,
      cell: (p) => fmt(p.figures[s.metric]),
      sort: (p) => p.figures[s.metric] ?? null,
    },
    ...(s.search?.rungs ?? []).map((r, i) => ({
      key: `r${i}`,
      label: `rung ${i} (${r})`,
      /** @param {SweepPoint} p */
      cell: (p) => fmt(p.rungFigures?.[i]),
      /** @param {SweepPoint} p */
      sort: (p) => p.rungFigures?.[i] ?? null,
    })),
  ];
}

/**
 * The knobs that are numbers, and the plots' rows: one per finished point and axis
 * (`parallel`), one per finished point and knob (`scatter`).
 * @param {Sweep} s
 */
function knobRows(s) {
  const knobs = s.knobs.filter((k) => s.points.some((p) => typeof p.overrides[k] === "number"));
  const done = s.points.filter((p) => p.figures[s.metric] !== undefined);
  const short = (/** @type {string} */ k) => k.split(".").at(-1) ?? k;
  return {
    knobs,
    parallel: done.flatMap((p) =>
      [...knobs, s.metric].map((k) => ({
        point: p.label,
        axis: short(k),
        value: k === s.metric ? p.figures[s.metric] : p.overrides[k],
        metric: p.figures[s.metric],
      }))
    ),
    scatter: done.flatMap((p) =>
      knobs.map((k) => ({
        point: p.label,
        knob: short(k),
        x: p.overrides[k],
        y: p.figures[s.metric],
      }))
    ),
  };
}

/**
 * Parallel coordinates over the named data `parallel`, starting from `values`.
 * @param {Sweep} s
 * @param {string[]} knobs
 * @param {Record<string, unknown>[]} values
 */
function parallelSpec(s, knobs, values) {
  return {
    title: "parallel coordinates (each line a point; values scaled per axis)",
    // drawn with its first rows: empty data makes vega warn about infinite extents
    data: { name: "parallel", values },
    transform: [
      {
        joinaggregate: [
          { op: "min", field: "value", as: "lo" },
          { op: "max", field: "value", as: "hi" },
        ],
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
  };
}

/**
 * A scatter per knob over the named data `scatter`, starting from `values`.
 * @param {Sweep} s
 * @param {Record<string, unknown>[]} values
 */
function scatterSpec(s, values) {
  return {
    data: { name: "scatter", values },
    facet: { field: "knob", type: "nominal", title: null },
    columns: 3,
    spec: {
      width: 220,
      height: 160,
      mark: { type: "point", filled: true },
      encoding: {
        // few short ticks: a learning rate's 0.0001 and 0.00015 must not run together
        x: {
          field: "x",
          type: "quantitative",
          scale: { zero: false },
          title: null,
          axis: { format: "~g", tickCount: 4, labelOverlap: "greedy" },
        },
        y: { field: "y", type: "quantitative", title: s.metric },
        tooltip: [{ field: "point" }, { field: "x", format: "~g" }, { field: "y" }],
      },
    },
    resolve: { scale: { x: "independent" } },
  };
}

/** @param {Sweep} s */
function sweepHeading(s) {
  return h(
    "p",
    { class: "sub" },
    `${s.points.length} points; ranked by ${s.metric} (${
      s.higherIsBetter ? "higher" : "lower"
    } is better)${
      s.search
        ? `; halving, rungs ${
          s.search.rungs.join(", ")
        } of ${s.resource}: each point's figure is at the furthest rung it reached`
        : ""
    }; `,
    h("a", { href: s.report }, "static report"),
  );
}

/**
 * A sweep's page, drawn once; while points run, each poll updates the table (keeping its sort
 * and filter), the goal table and the plots' data in place.
 * @param {HTMLElement} main
 * @param {string} name
 */
async function sweepPage(main, name) {
  const url = `/api/sweep/${encodeURIComponent(name)}`;
  /** @type {Sweep} */
  let s = await getJson(url);
  const heading = h("div"), goals = h("div");
  const params = new URLSearchParams(location.search);
  const points = table(s.points, pointColumns(s), {
    rowId: (p) => p.run ?? p.label,
    // the filter and sort live in the address, as on the runs page
    initial: {
      query: params.get("q") ?? "",
      sort: params.get("sort"),
      desc: params.get("desc") === "1",
    },
    onState: (st) => setAddress({ q: st.query, sort: st.sort, desc: st.desc ? "1" : null }),
  });
  const parEl = h("div", { class: "plot" }), scatterEl = h("div", { class: "plot" });
  main.replaceChildren(
    h("h1", {}, `Sweep ${s.name}`),
    heading,
    points.el,
    goals,
    h("h2", {}, `Knobs against ${s.metric}`),
    parEl,
    scatterEl,
  );
  /** @type {{ parallel: VegaView, scatter: VegaView } | null} */
  let views = null;
  const show = async () => {
    heading.replaceChildren(sweepHeading(s));
    points.update(s.points);
    goals.replaceChildren(...goalTable(s.goals ?? []));
    const rows = knobRows(s);
    if (!rows.knobs.length || !rows.parallel.length) return;
    if (!views) {
      views = {
        parallel: await embed(parEl, parallelSpec(s, rows.knobs, rows.parallel)),
        scatter: await embed(scatterEl, scatterSpec(s, rows.scatter)),
      };
    }
    await views.parallel.data("parallel", rows.parallel).runAsync();
    await views.scatter.data("scatter", rows.scatter).runAsync();
    parEl.dataset.points = String(new Set(rows.parallel.map((r) => r.point)).size);
  };
  await show();
  while (s.points.some((p) => p.status === "running" || p.status === "queued")) {
    await sleep(1000);
    try {
      s = await getJson(url);
    } catch {
      continue;
    }
    await show();
  }
}

// ---- boot ----
addEventListener("DOMContentLoaded", async () => {
  const main = $("#app");
  const page = main.dataset.page, arg = main.dataset.arg ?? "";
  try {
    if (page === "runs") await runsPage(main);
    if (page === "run") await runPage(main, arg);
    if (page === "compare") await comparePage(main, arg.split(",").filter(Boolean));
    if (page === "sweep") await sweepPage(main, arg);
    main.dataset.ready = "1";
  } catch (e) {
    main.append(h("p", { class: "error" }, `error: ${/** @type {Error} */ (e).message}`));
    main.dataset.ready = "error";
  }
});
