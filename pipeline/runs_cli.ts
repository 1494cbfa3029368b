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
import { basename, dirname, join, sep as SEP } from "node:path";
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
import { INDEX_FILE, type IndexedRead, type RowCodec, RunIndex } from "./run_index.ts";
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

/**
 * The paths whose values are not the same in every one of `flats` (their keys, inherited ones
 * included: the run index's configs share what they have in common through a prototype).
 */
export function differingPaths(flats: Record<string, unknown>[]): string[] {
  // a path none of them holds as its own is inherited from one shared base: the same in all
  const paths = new Set<string>();
  const protos = new Set<object | null>();
  for (const f of flats) {
    for (const k of Object.keys(f)) paths.add(k);
    protos.add(Object.getPrototypeOf(f));
  }
  if (protos.size > 1) { for (const f of flats) for (const k in f) paths.add(k); }
  // one pass a path, stopping at the first value unlike the first one's
  return [...paths].filter((p) => {
    const first = flats[0]?.[p] ?? null;
    return flats.some((f) => !sameValue(f[p] ?? null, first));
  }).sort();
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
  /** When its training stage's entry was built (cached runs keep it; null: none). */
  trainedAt: string | null;
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
      trainedAt: null,
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
    trainedAt: await trainedAt(app, dir, rec),
  };
}

/** When the app's training stage's entry was built, from its seal's meta.json. */
async function trainedAt(app: App, runDir: string, rec: RunRecord): Promise<string | null> {
  const s = rec.stages.find((s) => s.stage === app.trainingStage);
  if (!s) return null;
  try {
    const meta = join(dirname(dirname(runDir)), "cache", s.stage, s.key, "meta.json");
    return JSON.parse(await Deno.readTextFile(meta)).created ?? null;
  } catch {
    return null; // removed by gc
  }
}

/**
 * Every run folder's latest record under `results`, through the run index where it can be
 * had (pipeline/run_index.ts); a record that is not one is left out and named through
 * `onSkip`.
 */
export async function listRuns(
  app: App,
  results: string,
  onSkip?: (file: string, problem: string) => void,
): Promise<RunRow[]> {
  const root = join(results, "runs");
  const read = async (name: string): Promise<IndexedRead<RunRow>> => {
    const dir = join(root, name);
    const row = await runRow(app, dir, onSkip);
    // a run in flight changes under the index: read again while its status says running (a
    // killed run's too: runRow asks its lock, which says interrupted)
    return { row, volatile: row?.live?.state === "running" };
  };
  const index = RunIndex.open(results);
  if (index) {
    try {
      const rows = await index.rows(read, configDeltas(index));
      // the folder as it is now (the results folder may have moved since the row was stored)
      for (const r of rows) r.dir = root + SEP + r.run;
      return sortByName(rows);
    } finally {
      index.close();
    }
  }
  const rows: RunRow[] = [];
  try {
    for await (const e of Deno.readDir(root)) {
      if (!e.isDirectory) continue;
      const { row } = await read(e.name);
      if (row) rows.push(row);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return sortByName(rows);
}

/**
 * Rows in localeCompare's order of their names; names of lower-case letters, digits and
 * hyphens (every name this tool makes) sort the same by code unit, at a fifth of the cost.
 */
function sortByName(rows: RunRow[]): RunRow[] {
  if (rows.every((r) => /^[a-z0-9-]*$/.test(r.run))) {
    return rows.sort((a, b) => (a.run < b.run ? -1 : a.run > b.run ? 1 : 0));
  }
  const byName = new Intl.Collator().compare;
  return rows.sort((a, b) => byName(a.run, b.run));
}

/** Whether two config values are the same (arrays by content). */
function sameValue(a: unknown, b: unknown): boolean {
  return a === b || (typeof a === "object" && typeof b === "object" && a !== null &&
    b !== null && canonicalJson(a) === canonicalJson(b));
}

/**
 * The run index's codec for rows: a row's config is kept as what differs from one base
 * config (the first one stored), about a tenth of a row's size, and read back as an object
 * whose prototype is the base, so 100k rows share one copy of what they have in common.
 */
function configDeltas(index: RunIndex): RowCodec<RunRow> {
  let base: Record<string, unknown> | null = null;
  const baseOf = (config: Record<string, unknown>) => {
    if (!base) {
      const text = index.meta("configBase") ?? index.keepMeta("configBase", JSON.stringify(config));
      // not frozen: a row shadows its fields by assignment (a frozen field cannot be)
      base = Object.assign(Object.create(null), JSON.parse(text));
    }
    return base!;
  };
  return {
    encode(row) {
      const b = baseOf(row.config);
      const set: Record<string, unknown> = {};
      for (const k of Object.keys(row.config)) {
        if (!(k in b) || !sameValue(row.config[k], b[k])) set[k] = row.config[k];
      }
      const unset = Object.keys(b).filter((k) => !(k in row.config));
      return JSON.stringify({ ...row, dir: "", config: { set, unset } });
    },
    decode(text) {
      const r = JSON.parse(text);
      const config = Object.assign(Object.create(baseOf({})), r.config.set);
      for (const k of r.config.unset) config[k] = undefined;
      r.config = config;
      return r;
    },
  };
}

/** Every config path of `rows` (those their configs inherit from the index's base too). */
export function configPaths(rows: RunRow[]): string[] {
  const paths = new Set<string>();
  const protos = new Set<object | null>();
  for (const r of rows) {
    for (const k of Object.keys(r.config)) paths.add(k);
    protos.add(Object.getPrototypeOf(r.config));
  }
  for (const p of protos) for (const k in p) paths.add(k);
  return [...paths];
}

const RUNS_USAGE =
  `usage: deno task runs [--results DIR] [--where QUERY] [--sort FIGURE] [--columns A,B,...] [--csv|--json]
                      [--limit N] [--reindex]
  a table of the runs in a results folder: the parameters that differ, the final figures, status,
  tags and training time (cached stages count with the seconds they took when computed)
  --where QUERY     only the runs it matches, e.g. "score > 0.8 and seed = 2", "tag = best",
                    "run ~ quick or not status = ok" (figures, config fields, run, status, tag, note)
  --sort FIGURE     order by one of the figures the table shows (best first)
  --columns A,B     the columns to show, in order: run, config, status, time, finished, a figure,
                    or a parameter (its path or short name); default: what fits the terminal
  --csv             every row as CSV (all columns unless --columns)
  --json            the rows as JSON
  --limit N         the first N rows in the order asked (a note says how many more)
  --reindex         rebuild the run index (results/index.sqlite) from the run folders first; the
                    index follows this tool's own writes, not run folders changed by hand
  Runs that differ only in the sweep resource (a halving point's rungs, a run and its extension)
  are listed under the longest, indented.`;

const DIFF_USAGE = `usage: deno task diff RUN_A RUN_B [--results DIR]
  the config and figure differences of two runs: run folders (from any results folder), or run
  names or name prefixes under --results`;

/**
 * Rows in table order, each rung of a halving point under the point's furthest run.
 * `differing`: the config paths whose values differ across `rows` (the rest are the same in
 * all, so two configs are equal when these are).
 */
function groupRungs(
  app: App,
  rows: RunRow[],
  differing: string[],
): { row: RunRow; rungOf: string | null }[] {
  const resource = app.sweep.resource;
  // one point's rungs: configs (names included) that differ only in the resource
  const keyPaths = differing.filter((p) => p !== resource);
  const idOfValues = (vs: unknown[]) =>
    vs.every((v) => typeof v !== "object" || v === null) ? JSON.stringify(vs) : canonicalJson(vs);
  const ids = new Map<RunRow, string>(
    rows.map((r) => [r, idOfValues(keyPaths.map((p) => r.config[p] ?? null))]),
  );
  const idOf = (r: RunRow) => ids.get(r)!;
  const groups = new Map<string, RunRow[]>();
  for (const r of rows) {
    const g = groups.get(idOf(r));
    if (g) g.push(r);
    else groups.set(idOf(r), [r]);
  }
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
    const params = configPaths(rows);
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
      reindex: boolean;
      limit?: string;
    }
  >(args, RUNS_USAGE, {
    results: { type: "string", default: "results" },
    sort: { type: "string" },
    where: { type: "string" },
    json: { type: "boolean", default: false },
    csv: { type: "boolean", default: false },
    columns: { type: "string" },
    reindex: { type: "boolean", default: false },
    limit: { type: "string" },
  });
  if (!parsed) return 0;
  const { values } = parsed;
  if (values.json && values.csv) throw new UsageError("--csv and --json: choose one", RUNS_USAGE);
  await checkResultsDir(values.results, { write: false, mustExist: true, usage: RUNS_USAGE });
  if (values.reindex) {
    const index = RunIndex.open(values.results);
    if (!index) {
      throw new UsageError(
        `--reindex: cannot open ${join(values.results, INDEX_FILE)} for writing`,
        RUNS_USAGE,
      );
    }
    index.clear();
    index.close();
  }
  const { rows, metrics, all: everyRun } = await sortedRuns(
    app,
    values.results,
    values.sort,
    values.where,
  );
  // the knobs that differ across the folder, so a filtered table still shows what it filtered on
  const differing = differingPaths(everyRun.map((r) => r.config));
  const params = differing.filter((p) => p !== "name");
  const ordered = groupRungs(app, rows, differing);
  const limit = values.limit === undefined ? Infinity : Number(values.limit);
  if (!(Number.isInteger(limit) && limit >= 1) && limit !== Infinity) {
    throw new UsageError(
      `--limit: a whole number of rows, 1 or more; got ${values.limit}`,
      RUNS_USAGE,
    );
  }
  const shown = ordered.slice(0, limit);
  const limitNote = shown.length < ordered.length
    ? `\n(${ordered.length - shown.length} more runs: a larger --limit shows them)`
    : "";
  if (values.json) {
    console.log(JSON.stringify(
      shown.map(({ row: r, rungOf }) => ({
        run: r.run,
        configHash: r.configHash,
        params: Object.fromEntries(params.map((p) => [p, r.config[p]])),
        figures: r.figures,
        status: r.status,
        trainedSeconds: r.trained,
        cachedSeconds: r.cachedSeconds,
        commandSeconds: r.seconds,
        finished: r.finished,
        trainedAt: r.trainedAt,
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
    for (const { row, rungOf } of shown) {
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
  // every cell once: the widths and the table both come from them
  const cells = new Map(cols.map((c) => [c, shown.map((o) => cellOf(c, o))]));
  let note = limitNote;
  if (values.columns === undefined) {
    const sized = cols.filter((c) => c.name !== "finished").map((c) => ({
      ...c,
      width: cells.get(c)!.reduce((w, cell) => Math.max(w, cell.length), c.name.length),
    }));
    // what goes first when the terminal is narrow: the hash, then figures from the last
    const dropOrder = ["config", ...metrics.filter((m) => m !== values.sort).reverse()];
    const fitted = fitColumns(sized, outputWidth(), dropOrder).map((f) =>
      cols.find((c) => c.name === f.name)!
    );
    const hidden = sized.filter((c) => !fitted.some((f) => f.name === c.name)).map((c) => c.name);
    if (hidden.length) {
      note += "\n" + hiddenNote(hidden, outputWidth());
    }
    cols = fitted;
  }
  const body = shown.map((_, i) => cols.map((c) => cells.get(c)![i]));
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
