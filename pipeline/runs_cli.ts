/**
 * `deno task runs`: a table of the runs in a results folder (name, config hash, the
 * parameters that differ between them, final figures, status, wall time), like
 * `dvc exp show`; `deno task diff RUN_A RUN_B`: their config and figure differences.
 *
 * @example
 * ```ts
 * import { differingPaths, flatten } from "./runs_cli.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(flatten({ a: { b: 1, c: [2] } }), { "a.b": 1, "a.c": [2] });
 * assert.deepEqual(differingPaths([{ "a.b": 1, x: 1 }, { "a.b": 2, x: 1 }]), ["a.b"]);
 * ```
 */
import { basename, dirname, join } from "node:path";
import type { App } from "./app.ts";
import { parseCommand } from "./args.ts";
import { UsageError } from "./errors.ts";
import { canonicalJson } from "./hash.ts";
import type { RunRecord } from "./runner.ts";
import { recordProblem, type StageRecord } from "./run_record.ts";
import { checkResultsDir } from "./store.ts";
import { type LiveStatus, readLiveStatus, runState } from "./live.ts";
import { readTags } from "./run_tags.ts";
import { parseQuery, QueryError } from "./query.ts";
import {
  csvLine,
  fitColumns,
  outputWidth,
  shortHeaders,
  showValue as show,
  textTable,
} from "./runs_table.ts";

/** A config as `path -> leaf value` (arrays are leaves). */
export function flatten(v: unknown, prefix = "", out: Record<string, unknown> = {}) {
  if (typeof v === "object" && v !== null && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
  } else out[prefix] = v;
  return out;
}

/** The paths whose values are not the same in every one of `flats`. */
export function differingPaths(flats: Record<string, unknown>[]): string[] {
  const paths = new Set(flats.flatMap((f) => Object.keys(f)));
  return [...paths].filter((p) => new Set(flats.map((f) => canonicalJson(f[p] ?? null))).size > 1)
    .sort();
}

/** A run as the table shows it. */
export interface RunRow {
  run: string;
  dir: string;
  configHash: string;
  status: string;
  /** The latest command's wall seconds. */
  seconds: number;
  /** The compute seconds of what the run holds: stages run now plus cached ones as built. */
  trained: number;
  /** The part of {@link trained} computed earlier (cached entries, as built). */
  cachedSeconds: number;
  finished: string | null;
  config: Record<string, unknown>;
  figures: Record<string, number | undefined>;
  /** The run folder's live status, as read for this row (null: none). */
  live: LiveStatus | null;
  /** The user's tags and note (tags.json in the run folder). */
  tags: string[];
  note: string;
}

/** A cached stage's seconds when its entry was built (older records: from the entry's seal). */
async function builtSeconds(runDir: string, s: StageRecord): Promise<number> {
  if (s.builtSeconds !== undefined) return s.builtSeconds;
  try {
    const meta = join(dirname(dirname(runDir)), "cache", s.stage, s.key, "meta.json");
    return JSON.parse(await Deno.readTextFile(meta)).seconds ?? 0;
  } catch {
    return 0; // removed by gc: unknown
  }
}

/**
 * A run folder's row from its latest record, or null when it has none yet, or one that is not
 * a run record (said through `onSkip`).
 */
async function runRow(
  app: App,
  dir: string,
  onSkip?: (file: string, problem: string) => void,
): Promise<RunRow | null> {
  let rec: RunRecord;
  const file = join(dir, "run.json");
  let text: string;
  // a run in flight, or one killed: its live status says which (its lock and heartbeat checked)
  const live = await readLiveStatus(dir);
  try {
    text = await Deno.readTextFile(file);
  } catch {
    if (!live || live.state !== "running") return null; // not a run folder (yet)
    return {
      run: basename(dir),
      dir,
      configHash: "",
      status: await runState(dir, live),
      seconds: 0,
      trained: 0,
      cachedSeconds: 0,
      finished: null,
      config: {},
      figures: {},
      live,
      ...(await readTags(dir, onSkip)),
    };
  }
  try {
    rec = JSON.parse(text);
  } catch {
    onSkip?.(file, "not valid JSON");
    return null;
  }
  const problem = recordProblem(rec);
  if (problem) {
    onSkip?.(file, problem);
    return null;
  }
  const held = rec.stages.filter((s) => s.status === "ran" || s.status === "cached");
  let cachedSeconds = 0;
  for (const s of held) if (s.status === "cached") cachedSeconds += await builtSeconds(dir, s);
  const summaries = Object.fromEntries(
    rec.stages.filter((s) => s.summary).map((s) => [s.stage, s.summary]),
  );
  // a later run of the folder that is in flight or was killed says so over the last record
  const newer = live && live.state === "running" && live.started > rec.started;
  return {
    run: basename(dir),
    dir,
    configHash: rec.configHash.slice(0, 12),
    status: newer ? await runState(dir, live) : rec.status,
    seconds: rec.seconds,
    trained: cachedSeconds + held.reduce((n, s) => n + (s.status === "ran" ? s.seconds : 0), 0),
    cachedSeconds,
    finished: rec.finished,
    config: flatten(rec.config),
    figures: app.figures(summaries),
    live,
    ...(await readTags(dir, onSkip)),
  };
}

/**
 * Every run folder's latest record under `results`; a record that is not one is left out and
 * named through `onSkip`.
 */
export async function listRuns(
  app: App,
  results: string,
  onSkip?: (file: string, problem: string) => void,
): Promise<RunRow[]> {
  const rows: RunRow[] = [];
  const root = join(results, "runs");
  try {
    for await (const e of Deno.readDir(root)) {
      if (!e.isDirectory) continue;
      const row = await runRow(app, join(root, e.name), onSkip);
      if (row) rows.push(row);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return rows.sort((a, b) => a.run.localeCompare(b.run));
}

const RUNS_USAGE =
  `usage: deno task runs [--results DIR] [--where QUERY] [--sort FIGURE] [--columns A,B,...] [--csv|--json]
  a table of the runs in a results folder: the parameters that differ, the final figures, status,
  tags and training time (cached stages count with the seconds they took when computed)
  --where QUERY     only the runs it matches, e.g. "score > 0.8 and seed = 2", "tag = best",
                    "run ~ quick or not status = ok" (figures, config fields, run, status, tag, note)
  --sort FIGURE     order by one of the figures the table shows (best first)
  --columns A,B     the columns to show, in order: run, config, status, time, finished, a figure,
                    or a parameter (its path or short name); default: what fits the terminal
  --csv             every row as CSV (all columns unless --columns)
  --json            the rows as JSON
  Runs that differ only in the sweep resource (a halving point's rungs, a run and its extension)
  are listed under the longest, indented.`;

const DIFF_USAGE = `usage: deno task diff RUN_A RUN_B [--results DIR]
  the config and figure differences of two runs: run folders (from any results folder), or run
  names or name prefixes under --results`;

/** Rows in table order, each rung of a halving point under the point's furthest run. */
function groupRungs(app: App, rows: RunRow[]): { row: RunRow; rungOf: string | null }[] {
  const resource = app.sweep.resource;
  // one point's rungs: configs (names included) that differ only in the resource
  const idOf = (r: RunRow) =>
    canonicalJson(resource ? { ...r.config, [resource]: null } : r.config);
  const groups = new Map<string, RunRow[]>();
  for (const r of rows) groups.set(idOf(r), [...(groups.get(idOf(r)) ?? []), r]);
  const resourceOf = (r: RunRow) => Number(resource ? r.config[resource] ?? 0 : 0);
  const out: { row: RunRow; rungOf: string | null }[] = [];
  const seen = new Set<string>();
  for (const r of rows) {
    const id = idOf(r);
    if (seen.has(id)) continue;
    seen.add(id);
    const g = [...groups.get(id)!].sort((a, b) => resourceOf(b) - resourceOf(a));
    out.push({ row: g[0], rungOf: null });
    for (const r2 of g.slice(1)) out.push({ row: r2, rungOf: g[0].run });
  }
  return out;
}

/** The runs table's columns for these rows. */
function runColumns(params: string[], metrics: string[], tagged = false) {
  const short = shortHeaders(params);
  const time = (r: RunRow) =>
    `${r.trained.toFixed(1)}s${
      r.cachedSeconds > 0 ? ` (${r.cachedSeconds.toFixed(1)} cached)` : ""
    }`;
  type Col = {
    name: string;
    aliases: string[];
    cell: (r: RunRow) => string;
    raw: (r: RunRow) => unknown;
  };
  const cols: Col[] = [
    { name: "run", aliases: [], cell: (r) => r.run, raw: (r) => r.run },
    {
      name: "config",
      aliases: ["configHash"],
      cell: (r) => r.configHash,
      raw: (r) => r.configHash,
    },
    ...params.map((p): Col => ({
      name: short[p],
      aliases: [p],
      cell: (r) => show(r.config[p] ?? null),
      raw: (r) => r.config[p] ?? null,
    })),
    ...metrics.map((m): Col => ({
      name: m,
      aliases: [],
      cell: (r) => (r.figures[m] === undefined ? "" : show(r.figures[m])),
      raw: (r) => r.figures[m] ?? null,
    })),
    { name: "status", aliases: [], cell: (r) => r.status, raw: (r) => r.status },
    ...(tagged
      ? [{
        name: "tags",
        aliases: ["tags", "tag"],
        cell: (r: RunRow) => r.tags.join(","),
        raw: (r: RunRow) => r.tags.join(" "),
      }]
      : []),
    { name: "time", aliases: ["trained"], cell: time, raw: (r) => r.trained },
    { name: "finished", aliases: [], cell: (r) => r.finished ?? "", raw: (r) => r.finished },
  ];
  return cols;
}

/** The line naming the columns left out, cut to `width`. */
function hiddenNote(hidden: string[], width: number): string {
  const tail = "; --columns or --csv shows them)";
  let list = hidden.join(", ");
  const room = width - `(${hidden.length} more: `.length - tail.length;
  if (list.length > room) list = list.slice(0, Math.max(0, room - 3)) + "...";
  return `(${hidden.length} more: ${list}${tail}`;
}

/** Says on stderr, in one line, that a record was left out of a listing, and why. */
const skipNote = (file: string, problem: string) =>
  console.error(`skipped ${file}: ${problem} (the other runs are listed)`);

/** The runs' rows, in the order asked. */
async function sortedRuns(
  app: App,
  results: string,
  sort: string | undefined,
  where: string | undefined,
) {
  const all = await listRuns(app, results, skipNote);
  let rows = all;
  const metrics = [...new Set(rows.flatMap((r) => Object.keys(r.figures)))];
  if (where !== undefined) {
    const params = [...new Set(rows.flatMap((r) => Object.keys(r.config)))];
    try {
      const q = parseQuery(where, { params, figures: metrics });
      rows = rows.filter(q);
    } catch (e) {
      if (e instanceof QueryError) throw new UsageError(`--where: ${e.message}`, RUNS_USAGE);
      throw e;
    }
  }
  if (sort !== undefined) {
    if (!metrics.includes(sort) && rows.length) {
      throw new UsageError(
        `--sort ${sort}: no such figure; figures: ${metrics.join(", ")}`,
        RUNS_USAGE,
      );
    }
    const higher = app.sweep.higherIsBetter.includes(sort);
    rows.sort((a, b) => {
      const x = a.figures[sort], y = b.figures[sort];
      if (x === undefined || y === undefined) return x === undefined ? 1 : -1;
      return higher ? y - x : x - y;
    });
  }
  return { rows, metrics, all };
}

/** `deno task runs`; returns the exit code. */
export async function runsCommand(app: App, args: string[]): Promise<number> {
  const parsed = parseCommand<
    {
      results: string;
      sort?: string;
      where?: string;
      json: boolean;
      csv: boolean;
      columns?: string;
    }
  >(args, RUNS_USAGE, {
    results: { type: "string", default: "results" },
    sort: { type: "string" },
    where: { type: "string" },
    json: { type: "boolean", default: false },
    csv: { type: "boolean", default: false },
    columns: { type: "string" },
  });
  if (!parsed) return 0;
  const { values } = parsed;
  if (values.json && values.csv) throw new UsageError("--csv and --json: choose one", RUNS_USAGE);
  await checkResultsDir(values.results, { write: false, mustExist: true, usage: RUNS_USAGE });
  const { rows, metrics, all: everyRun } = await sortedRuns(
    app,
    values.results,
    values.sort,
    values.where,
  );
  // the knobs that differ across the folder, so a filtered table still shows what it filtered on
  const params = differingPaths(everyRun.map((r) => r.config)).filter((p) => p !== "name");
  const ordered = groupRungs(app, rows);
  if (values.json) {
    console.log(JSON.stringify(
      ordered.map(({ row: r, rungOf }) => ({
        run: r.run,
        configHash: r.configHash,
        params: Object.fromEntries(params.map((p) => [p, r.config[p]])),
        figures: r.figures,
        status: r.status,
        trainedSeconds: r.trained,
        cachedSeconds: r.cachedSeconds,
        commandSeconds: r.seconds,
        finished: r.finished,
        tags: r.tags,
        note: r.note,
        rungOf,
      })),
      null,
      2,
    ));
    return 0;
  }
  const all = runColumns(params, metrics, rows.some((r) => r.tags.length > 0));
  let cols = all;
  if (values.columns !== undefined) {
    cols = values.columns.split(",").map((n) => {
      const c = all.find((c) => c.name === n || c.aliases.includes(n));
      if (!c) {
        throw new UsageError(
          `--columns: no column ${n}; columns: ${all.map((c) => c.name).join(", ")}`,
          RUNS_USAGE,
        );
      }
      return c;
    });
  }
  if (values.csv) {
    console.log(csvLine([...cols.map((c) => c.aliases[0] ?? c.name), "rungOf"]));
    for (const { row, rungOf } of ordered) {
      const cell = (
        v: unknown,
      ) => (v === null || v === undefined ? "" : typeof v === "string" ? v : JSON.stringify(v));
      console.log(csvLine([...cols.map((c) => cell(c.raw(row))), rungOf ?? ""]));
    }
    return 0;
  }
  if (!rows.length) {
    console.log(`no runs in ${join(values.results, "runs")}`);
    return 0;
  }
  const cellOf = (c: (typeof all)[number], { row, rungOf }: (typeof ordered)[number]) =>
    c.name === "run" && rungOf ? `  \u21b3 ${row.run}` : c.cell(row);
  let note = "";
  if (values.columns === undefined) {
    const sized = cols.filter((c) => c.name !== "finished").map((c) => ({
      ...c,
      width: Math.max(c.name.length, ...ordered.map((o) => cellOf(c, o).length)),
    }));
    // what goes first when the terminal is narrow: the hash, then figures from the last
    const dropOrder = ["config", ...metrics.filter((m) => m !== values.sort).reverse()];
    const fitted = fitColumns(sized, outputWidth(), dropOrder);
    const hidden = sized.filter((c) => !fitted.includes(c)).map((c) => c.name);
    if (hidden.length) {
      note = "\n" + hiddenNote(hidden, outputWidth());
    }
    cols = fitted;
  }
  const body = ordered.map((o) => cols.map((c) => cellOf(c, o)));
  console.log(textTable(cols.map((c) => c.name), body) + note);
  return 0;
}

/**
 * A run by its folder (a path, from any results folder), or by its name or a name prefix
 * under `results`; a usage error listing the runs when there is none, or the candidates when
 * the prefix starts more than one.
 */
export async function findRun(
  app: App,
  results: string,
  x: string,
  usage?: string,
): Promise<RunRow> {
  const direct = x.includes("/") ? await runRow(app, x, skipNote) : null;
  if (direct) return direct;
  const rows = await listRuns(app, results, skipNote);
  const exact = rows.find((r) => r.run === basename(x) || r.dir === x);
  const prefixed = exact ? [exact] : rows.filter((r) => r.run.startsWith(basename(x)));
  if (prefixed.length > 1) {
    // as git and DVC do: an ambiguous prefix is refused, never resolved to the first match
    const shown = prefixed.slice(0, 10).map((r) => r.run).join(", ");
    throw new UsageError(
      `${x} is ambiguous: it starts ${prefixed.length} runs (${shown}${
        prefixed.length > 10 ? ", ..." : ""
      }); give more of the name`,
      usage,
    );
  }
  const r = prefixed[0];
  if (!r) {
    throw new UsageError(
      `${x}: no such run in ${join(results, "runs")}; runs: ${
        rows.map((r) => r.run).join(", ") || "none"
      }`,
      usage,
    );
  }
  return r;
}

/**
 * `deno task diff RUN_A RUN_B`: run folders (by path, from any results folder), or their
 * names or name prefixes under --results.
 */
export async function diffCommand(app: App, args: string[]): Promise<number> {
  const parsed = parseCommand<{ results: string }>(args, DIFF_USAGE, {
    results: { type: "string", default: "results" },
  }, { positionals: true });
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  if (positionals.length !== 2) {
    throw new UsageError(`expected two runs, got ${positionals.length}`, DIFF_USAGE);
  }
  const find = (x: string) => findRun(app, values.results, x, DIFF_USAGE);
  const [a, b] = [await find(positionals[0]), await find(positionals[1])];
  console.log(`${a.run} -> ${b.run}`);
  const paths = differingPaths([a.config, b.config]).filter((p) => p !== "name");
  console.log(paths.length ? "config:" : "config: the same");
  for (const p of paths) {
    console.log(`  ${p}: ${show(a.config[p] ?? null)} -> ${show(b.config[p] ?? null)}`);
  }
  const metrics = [...new Set([...Object.keys(a.figures), ...Object.keys(b.figures)])];
  if (metrics.length) console.log("figures:");
  for (const m of metrics) {
    const x = a.figures[m], y = b.figures[m];
    const delta = x !== undefined && y !== undefined
      ? ` (${y - x >= 0 ? "+" : ""}${show(y - x)})`
      : "";
    console.log(
      `  ${m}: ${x === undefined ? "-" : show(x)} -> ${y === undefined ? "-" : show(y)}${delta}`,
    );
  }
  return 0;
}
