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
import { canonicalJson, sha256Hex } from "./hash.ts";
import type { RunRecord } from "./runner.ts";
import { recordProblem, type StageRecord } from "./run_record.ts";
import { checkResultsDir } from "./store.ts";
import { type LiveStatus, readLiveStatus, runState } from "./live.ts";
import { readTags } from "./run_tags.ts";
import { parseQuery, QueryError } from "./query.ts";
import {
  INDEX_FILE,
  type IndexedRead,
  type IndexEntry,
  type RowCodec,
  RunIndex,
} from "./run_index.ts";
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

/** Reads a run folder's row for the run index (a run in flight is read again each listing). */
function indexReader(app: App, root: string, onSkip?: (file: string, problem: string) => void) {
  return async (name: string): Promise<IndexedRead<RunRow>> => {
    const row = await runRow(app, join(root, name), onSkip);
    // a run in flight changes under the index: read again while its status says running (a
    // killed run's too: runRow asks its lock, which says interrupted)
    return { row, volatile: row?.live?.state === "running" };
  };
}

/**
 * The run index of `results`, brought up to its folders, with its codec; null where it
 * cannot be had (then every folder is read, as {@link listRuns} does).
 */
async function syncedIndex(
  app: App,
  results: string,
  onSkip?: (file: string, problem: string) => void,
): Promise<{ index: RunIndex; codec: ConfigDeltas; root: string } | null> {
  const index = RunIndex.open(results);
  if (!index) return null;
  const root = join(results, "runs");
  const codec = configDeltas(index, app.sweep.resource);
  try {
    await index.sync(indexReader(app, root, onSkip), codec);
  } catch (e) {
    index.close();
    throw e;
  }
  return { index, codec, root };
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
  const read = indexReader(app, root, onSkip);
  const index = RunIndex.open(results);
  if (index) {
    try {
      const rows = await index.rows(read, configDeltas(index, app.sweep.resource));
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

/** The folder-wide facts of a listing: what differs, which figures, whether any run is tagged. */
export interface ListingFacts {
  /** Config paths whose values are not the same in every run. */
  differing: string[];
  /** Every figure a run has, in order of first appearance by run name. */
  metrics: string[];
  tagged: boolean;
  /** Whether any run has a note. */
  noted: boolean;
  /** Whether every run name sorts the same by code unit as by locale (see {@link byName}). */
  plainNames: boolean;
}

/**
 * One page of the runs table without decoding every row: the index orders its entries (by
 * name, or by a figure), groups rungs, and decodes the page's rows only; the folder-wide
 * facts are summed once per change of the index. Null where there is no index.
 */
export async function runsPage(
  app: App,
  results: string,
  { sort, limit = Infinity, rungs = true, onSkip }: {
    sort?: string;
    limit?: number;
    /** Whether a halving point's rungs go under its furthest run (else: the order alone). */
    rungs?: boolean;
    onSkip?: (file: string, problem: string) => void;
  } = {},
): Promise<
  ({ ordered: { row: RunRow; rungOf: string | null }[]; total: number } & ListingFacts) | null
> {
  const synced = await syncedIndex(app, results, onSkip);
  if (!synced) return null;
  const { index, codec, root } = synced;
  try {
    const facts = index.cached("listing", () => listingFacts(index, codec));
    const higher = sort !== undefined && app.sweep.higherIsBetter.includes(sort);
    // the table's order: by the figure asked (best first, runs without it last), else by name
    const byFigure = (a: IndexEntry, b: IndexEntry) => {
      const x = a[3], y = b[3];
      if (x === null || y === null) return x === null ? (y === null ? 0 : 1) : -1;
      return higher ? y - x : x - y;
    };
    let page: { item: IndexEntry; rungOf: IndexEntry | null }[];
    if (facts.plainNames && limit < index.count() / 4) {
      // the index's order is the table's: the first `limit` runs, and the rest of their groups
      const head = index.head(limit, sort, higher);
      const groups = new Map<string, IndexEntry[]>();
      for (const e of rungs ? index.groupMembers(head.map((e) => e[1]), sort) : []) {
        const g = groups.get(e[1]);
        if (g) g.push(e);
        else groups.set(e[1], [e]);
      }
      page = [];
      const done = new Set<string>();
      for (const e of head) {
        if (page.length >= limit) break;
        const g = groups.get(e[1]);
        if (!g) page.push({ item: e, rungOf: null });
        else if (!done.has(e[1])) {
          done.add(e[1]);
          // a group's runs in the table's order, then by resource (as groupOrder keeps them)
          if (sort !== undefined) g.sort(byFigure);
          page.push(...groupOrder(g, () => e[1], (m) => m[2]));
        }
      }
      page = page.slice(0, limit);
    } else {
      // most of the runs, or names that sort otherwise by locale than by code unit: every
      // entry, ordered here
      const entries = byName(index.entries(sort), (e) => e[0]);
      if (sort !== undefined) entries.sort(byFigure);
      page = (rungs
        ? groupOrder(entries, (e) =>
          e[1], (e) => e[2])
        : entries.map((item) => ({ item, rungOf: null }))).slice(0, limit);
    }
    const total = index.count();
    const rows = new Map(index.get(page.map((p) => p.item[0]), codec).map((r) => [r.run, r]));
    const ordered = page.flatMap(({ item, rungOf }) => {
      const row = rows.get(item[0]);
      if (!row) return [];
      row.dir = root + SEP + row.run;
      return [{ row, rungOf: rungOf ? rungOf[0] : null }];
    });
    return { ordered, total, ...facts };
  } finally {
    index.close();
  }
}

/**
 * Every run's row, kept between listings in a long-lived process (the dashboard's): each
 * listing brings the index up to the folders, then decodes only the rows that changed since
 * the last one.
 */
export class HeldRuns {
  #epoch = "";
  #generation = 0;
  #rows = new Map<string, RunRow>();
  #sorted: RunRow[] | null = null;

  constructor(
    readonly app: App,
    readonly results: string,
    readonly onSkip?: (file: string, problem: string) => void,
  ) {}

  /**
   * Every run's row, by name (shared with later calls: not to be changed), and what the
   * listing sums over them (kept by the index until a row changes).
   */
  async rows(): Promise<{ rows: RunRow[]; facts: ListingFacts }> {
    const synced = await syncedIndex(this.app, this.results, this.onSkip);
    if (!synced) {
      const rows = await listRuns(this.app, this.results, this.onSkip);
      return { rows, facts: factsOfRows(rows) };
    }
    const { index, codec, root } = synced;
    try {
      const facts = index.cached("listing", () => listingFacts(index, codec));
      const epoch = index.epoch(), generation = index.generation();
      if (epoch !== this.#epoch || generation < this.#generation) {
        // another index file (rebuilt): nothing held is known to be current
        this.#rows.clear();
        this.#epoch = epoch;
        this.#generation = 0;
        this.#sorted = null;
      }
      if (generation !== this.#generation || !this.#sorted) {
        for (const r of index.changedSince(this.#generation, codec)) {
          r.dir = root + SEP + r.run;
          this.#rows.set(r.run, r);
        }
        const names = new Set(index.names());
        for (const n of this.#rows.keys()) if (!names.has(n)) this.#rows.delete(n);
        this.#sorted = sortByName([...this.#rows.values()]);
        this.#generation = generation;
      }
      return { rows: this.#sorted, facts };
    } finally {
      index.close();
    }
  }
}

/** The listing's facts of rows read from their folders (where there is no index). */
function factsOfRows(rows: RunRow[]): ListingFacts {
  return {
    differing: differingPaths(rows.map((r) => r.config)),
    metrics: [...new Set(rows.flatMap((r) => Object.keys(r.figures)))],
    tagged: rows.some((r) => r.tags.length > 0),
    noted: rows.some((r) => r.note !== ""),
    plainNames: rows.every((r) => PLAIN_NAME.test(r.run)),
  };
}

/** Sums every stored row's facts (see {@link configDeltas}) into the listing's facts. */
function listingFacts(index: RunIndex, codec: ConfigDeltas): ListingFacts {
  const base = codec.base();
  // per path: the first value seen in a row's delta, how many rows hold one, whether two differ
  const seen = new Map<string, { first: string; count: number; differs: boolean }>();
  const metrics = new Set<string>();
  let tagged = false, noted = false, n = 0, plainNames = true;
  for (const [name, text] of index.facts()) {
    if (plainNames && !PLAIN_NAME.test(name)) plainNames = false;
    const f = JSON.parse(text) as { d: Record<string, string>; f: string[]; t: number; n: number };
    if (f.n) noted = true;
    n++;
    for (const m of f.f) metrics.add(m);
    if (f.t) tagged = true;
    for (const [p, v] of Object.entries(f.d)) {
      const s = seen.get(p);
      if (!s) seen.set(p, { first: v, count: 1, differs: false });
      else {
        s.count++;
        if (v !== s.first) s.differs = true;
      }
    }
  }
  const differing = [...seen].filter(([p, s]) =>
    s.differs || (s.count < n && s.first !== canonicalJson(base[p] ?? null))
  ).map(([p]) => p).sort();
  return { differing, metrics: [...metrics], tagged, noted, plainNames };
}

/** Names that sort the same by code unit as by locale. */
const PLAIN_NAME = /^[a-z0-9-]*$/;

/**
 * Items in localeCompare's order of their names; names of lower-case letters, digits and
 * hyphens (every name this tool makes) sort the same by code unit, at a fifth of the cost.
 */
function byName<T>(items: T[], nameOf: (item: T) => string): T[] {
  if (items.every((r) => PLAIN_NAME.test(nameOf(r)))) {
    return items.sort((a, b) => {
      const x = nameOf(a), y = nameOf(b);
      return x < y ? -1 : x > y ? 1 : 0;
    });
  }
  const collate = new Intl.Collator().compare;
  return items.sort((a, b) => collate(nameOf(a), nameOf(b)));
}

const sortByName = (rows: RunRow[]) => byName(rows, (r) => r.run);

/** Whether two config values are the same (arrays by content). */
function sameValue(a: unknown, b: unknown): boolean {
  return a === b || (typeof a === "object" && typeof b === "object" && a !== null &&
    b !== null && canonicalJson(a) === canonicalJson(b));
}

/**
 * The run index's codec for rows: a row's config is kept as what differs from one base
 * config (the first one stored), about a tenth of a row's size, and read back as an object
 * whose prototype is the base, so 100k rows share one copy of what they have in common. Its
 * facets: the group (a hash of the config but `resource`: one sweep point's rungs share it),
 * the resource, the figures, and as facts the config's delta, figure names and whether tagged.
 */
type ConfigDeltas = RowCodec<RunRow> & { base(): Record<string, unknown> };

function configDeltas(index: RunIndex, resource: string | undefined): ConfigDeltas {
  let base: Record<string, unknown> | null = null;
  const baseOf = (config: Record<string, unknown>) => {
    if (!base) {
      const text = index.meta("configBase") ?? index.keepMeta("configBase", JSON.stringify(config));
      // not frozen: a row shadows its fields by assignment (a frozen field cannot be)
      base = Object.assign(Object.create(null), JSON.parse(text));
    }
    return base!;
  };
  const delta = (config: Record<string, unknown>) => {
    const b = baseOf(config);
    const set: Record<string, unknown> = {};
    for (const k of Object.keys(config)) {
      if (!(k in b) || !sameValue(config[k], b[k])) set[k] = config[k];
    }
    const unset = Object.keys(b).filter((k) => !(k in config));
    return { set, unset };
  };
  return {
    base: () => baseOf({}),
    encode(row) {
      return JSON.stringify({ ...row, dir: "", config: delta(row.config) });
    },
    decode(text) {
      const r = JSON.parse(text);
      const config = Object.assign(Object.create(baseOf({})), r.config.set);
      for (const k of r.config.unset) config[k] = undefined;
      r.config = config;
      return r;
    },
    facets(row) {
      const { set, unset } = delta(row.config);
      const d: Record<string, string> = {};
      for (const [k, v] of Object.entries(set)) d[k] = canonicalJson(v ?? null);
      for (const k of unset) d[k] = "null";
      // equal configs but for the resource (null and absent alike, as the table shows them)
      const kept: [string, unknown][] = [];
      for (const k in row.config) {
        if (k !== resource && row.config[k] !== undefined && row.config[k] !== null) {
          kept.push([k, row.config[k]]);
        }
      }
      kept.sort((x, y) => (x[0] < y[0] ? -1 : 1));
      return {
        group: sha256Hex(canonicalJson(kept)).slice(0, 20),
        resource: Number(resource ? row.config[resource] ?? 0 : 0),
        figures: row.figures,
        facts: JSON.stringify({
          d,
          f: Object.keys(row.figures),
          t: row.tags.length ? 1 : 0,
          n: row.note ? 1 : 0,
        }),
      };
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
                      [--limit N|all] [--reindex]
  a table of the runs in a results folder: the parameters that differ, the final figures, status,
  tags and training time (cached stages count with the seconds they took when computed)
  --where QUERY     only the runs it matches, e.g. "score > 0.8 and seed = 2", "tag = best",
                    "run ~ quick or not status = ok" (figures, config fields, run, status, tag, note)
  --sort FIGURE     order by one of the figures the table shows (best first)
  --columns A,B     the columns to show, in order: run, config, status, time, finished, a figure,
                    or a parameter (its path or short name); default: what fits the terminal
  --csv             every row as CSV (all columns unless --columns)
  --json            the rows as JSON
  --limit N|all     the first N rows in the order asked (a note says how many more); the
                    table shows 500 unless told, --csv and --json every row
  --reindex         rebuild the run index (results/index.sqlite) from the run folders first; the
                    index follows this tool's own writes, not run folders changed by hand
  Runs that differ only in the sweep resource (a halving point's rungs, a run and its extension)
  are listed under the longest, indented.`;

const DIFF_USAGE = `usage: deno task diff RUN_A RUN_B [--results DIR]
  the config and figure differences of two runs: run folders (from any results folder), or run
  names or name prefixes under --results`;

/**
 * Items in table order, each rung of a halving point under the point's furthest run: groups
 * (by `idOf`) in the order of their first item, each group's items by resource, largest first.
 */
function groupOrder<T>(
  items: T[],
  idOf: (item: T) => string,
  resourceOf: (item: T) => number,
): { item: T; rungOf: T | null }[] {
  const groups = new Map<string, T[]>();
  for (const r of items) {
    const g = groups.get(idOf(r));
    if (g) g.push(r);
    else groups.set(idOf(r), [r]);
  }
  const out: { item: T; rungOf: T | null }[] = [];
  for (const g of groups.values()) {
    if (g.length > 1) g.sort((a, b) => resourceOf(b) - resourceOf(a));
    out.push({ item: g[0], rungOf: null });
    for (let i = 1; i < g.length; i++) out.push({ item: g[i], rungOf: g[0] });
  }
  return out;
}

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
  return groupOrder(
    rows,
    (r) => ids.get(r)!,
    (r) => Number(resource ? r.config[resource] ?? 0 : 0),
  ).map(({ item, rungOf }) => ({ row: item, rungOf: rungOf?.run ?? null }));
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

/** The rows a table for people shows unless --limit says otherwise. */
const TABLE_ROWS = 500;

/**
 * The runs' rows in the order asked, the first `limit` of them, and the folder-wide facts.
 * Without a query the index answers a page (see {@link runsPage}); a query is matched
 * against every row.
 */
async function runsListing(
  app: App,
  results: string,
  sort: string | undefined,
  where: string | undefined,
  limit: number,
) {
  const checkSort = (metrics: string[], any: boolean) => {
    if (sort !== undefined && !metrics.includes(sort) && any) {
      throw new UsageError(
        `--sort ${sort}: no such figure; figures: ${metrics.join(", ")}`,
        RUNS_USAGE,
      );
    }
  };
  if (where === undefined) {
    const page = await runsPage(app, results, { sort, limit, onSkip: skipNote });
    if (page) {
      checkSort(page.metrics, page.total > 0);
      return { ...page, shown: page.ordered };
    }
  }
  const everyRun = await listRuns(app, results, skipNote);
  let rows = everyRun;
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
  checkSort(metrics, rows.length > 0);
  if (sort !== undefined) {
    const higher = app.sweep.higherIsBetter.includes(sort);
    rows.sort((a, b) => {
      const x = a.figures[sort], y = b.figures[sort];
      if (x === undefined || y === undefined) return x === undefined ? 1 : -1;
      return higher ? y - x : x - y;
    });
  }
  // the knobs that differ across the folder, so a filtered table still shows what it filtered on
  const differing = differingPaths(everyRun.map((r) => r.config));
  const ordered = groupRungs(app, rows, differing);
  return {
    shown: ordered.slice(0, limit),
    total: ordered.length,
    differing,
    metrics,
    tagged: rows.some((r) => r.tags.length > 0),
  };
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
  // a table for people stops at a page; --csv and --json (for programs) give every row
  const limit = values.limit === undefined
    ? (values.csv || values.json ? Infinity : TABLE_ROWS)
    : values.limit === "all"
    ? Infinity
    : Number(values.limit);
  if (!(Number.isInteger(limit) && limit >= 1) && limit !== Infinity) {
    throw new UsageError(
      `--limit: a whole number of rows, 1 or more, or all; got ${values.limit}`,
      RUNS_USAGE,
    );
  }
  const listing = await runsListing(app, values.results, values.sort, values.where, limit);
  const { shown, total, metrics, tagged } = listing;
  const params = listing.differing.filter((p) => p !== "name");
  const limitNote = shown.length < total
    ? `\n(${total - shown.length} more runs: --limit N or --limit all shows them)`
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
  const all = runColumns(params, metrics, tagged);
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
  if (!total) {
    console.log(`no runs in ${join(values.results, "runs")}`);
    return 0;
  }
  const cellOf = (c: (typeof all)[number], { row, rungOf }: (typeof shown)[number]) =>
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
  // one index, synced once: the names to match, then the match's row
  const synced = await syncedIndex(app, results, skipNote);
  try {
    const root = join(results, "runs");
    const fromFolders = synced ? [] : await listRuns(app, results, skipNote);
    const names = synced ? byName(synced.index.names(), (n) => n) : fromFolders.map((r) => r.run);
    const exact = names.find((n) => n === basename(x) || root + SEP + n === x);
    const prefixed = exact ? [exact] : names.filter((n) => n.startsWith(basename(x)));
    if (prefixed.length > 1) {
      // as git and DVC do: an ambiguous prefix is refused, never resolved to the first match
      const shown = prefixed.slice(0, 10).join(", ");
      throw new UsageError(
        `${x} is ambiguous: it starts ${prefixed.length} runs (${shown}${
          prefixed.length > 10 ? ", ..." : ""
        }); give more of the name`,
        usage,
      );
    }
    const rowOf = (name: string): RunRow | null => {
      if (!synced) return fromFolders.find((r) => r.run === name) ?? null;
      const [row] = synced.index.get([name], synced.codec);
      return row ? { ...row, dir: root + SEP + row.run } : null;
    };
    const r = prefixed.length ? rowOf(prefixed[0]) : null;
    if (!r) {
      const some = names.slice(0, 20).join(", ");
      throw new UsageError(
        `${x}: no such run in ${root}; runs: ${some || "none"}${
          names.length > 20 ? `, ... (${names.length} in all: deno task runs lists them)` : ""
        }`,
        usage,
      );
    }
    return r;
  } finally {
    synced?.index.close();
  }
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
