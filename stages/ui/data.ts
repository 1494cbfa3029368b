/**
 * What `deno task ui` serves as JSON, read from a results folder only (run folders, their
 * `live/` rows, the artifacts they link, sweep records): the runs list, one run (growing
 * while it trains), the sweeps and one sweep's points. Read-only: nothing here writes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fileUrl } from "./data.ts";
 * assert.equal(fileUrl("/r", "/r/runs/a b/report.html"), "/files/runs/a%20b/report.html");
 * ```
 */
import { basename, join } from "node:path";
import type { App } from "../../pipeline/app.ts";
import {
  lastProgressRow,
  lockHeld,
  readLiveRows,
  readLiveStatus,
  runState,
} from "../../pipeline/live.ts";
import { SWEEP_LOCK } from "../../pipeline/sweep/point.ts";
import {
  configPaths,
  HeldRuns,
  type ListingFacts,
  type RunRow,
  runsPage,
} from "../../pipeline/runs_cli.ts";
import { parseQuery, QueryError } from "../../pipeline/query.ts";
import { badPoints, type PointRecord, sweepRecordProblem } from "../../pipeline/point_record.ts";
import { goalBySetting } from "../reporting/sweep_report.ts";
import { artifactsDir, recordProblem, type RunRecord } from "../../pipeline/run_record.ts";
import { damagedFile } from "../../pipeline/store.ts";
import { artifact } from "../vocabulary.ts";

async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch {
    return null;
  }
}

/** A cache entry whose bits differ from its seal: the ui answers 409 with its message. */
export class DamagedEntry extends Error {
  override readonly name = "DamagedEntry";
}

/** A JSON file of a cache entry, read only while it matches the entry's seal (null: absent). */
async function readSealed<T>(results: string, path: string): Promise<T | null> {
  const damaged = await damagedFile(results, path);
  if (damaged) throw new DamagedEntry(damaged);
  return readJson<T>(path);
}

/** A run folder path as the server's `/files/` URL. */
export const fileUrl = (results: string, path: string) =>
  "/files/" + path.slice(results.length + 1).split("/").map(encodeURIComponent).join("/");

/**
 * Every sweep's points: run name prefix (`<sweep>-pNNN-`, the point's runs at every halving
 * rung) -> the sweep's folder name.
 */
async function sweepOfRuns(results: string): Promise<(run: string) => string | null> {
  const byPrefix = new Map<string, string>();
  for (const s of await listSweeps(results)) {
    for (const p of s.points) {
      byPrefix.set(`${s.specName}-p${String(p.index).padStart(3, "0")}`, s.name);
    }
  }
  // a point's runs are named `<spec>-p<NNN>-...`: a lookup a candidate, not a scan of points
  return (run) => {
    for (const m of run.matchAll(/-p\d{3,}(?=-)/g)) {
      const sweep = byPrefix.get(run.slice(0, m.index + m[0].length));
      if (sweep) return sweep;
    }
    return null;
  };
}

/** One row of the runs page. */
export interface RunsRow {
  run: string;
  status: string;
  stage: string | null;
  progress: { iteration: number; of: number } | null;
  sweep: string | null;
  params: Record<string, unknown>;
  figures: Record<string, number | undefined>;
  trainedSeconds: number | null;
  cachedSeconds: number | null;
  trainedAt: string | null;
  started: string | null;
  tags: string[];
  note: string;
}

/** The last iteration row of a live file, cheaply (its tail). */
async function liveProgress(runDir: string, stage: string | null) {
  if (stage !== "adversarial") return null;
  // the file's tail only: the runs page asks for every running run on each load
  const last = await lastProgressRow(join(runDir, "live", "adversarial.jsonl"));
  return last ? { iteration: last.iteration as number, of: last.of as number } : null;
}

/** The bad records the ui has said it skips. */
const reported = new Set<string>();

/** Says a line on stderr once per process, not on every page load. */
function note(line: string): void {
  if (reported.has(line)) return;
  reported.add(line);
  console.error(line);
}

/**
 * What the runs page asks for: `limit` rows from `offset` of the view sorted by column
 * `sort` (a column key of the page: run, sweep, status, a param path, a figure, tags, trained,
 * when) and filtered by `q` (a query such as `frechet < 100 and seed = 2`, or words a row
 * contains).
 */
export interface RunsView {
  offset: number;
  limit: number;
  sort: string | null;
  desc: boolean;
  q: string;
}

/** The view of `/api/runs?offset=&limit=&sort=&desc=1&q=` (every row when none is asked). */
export function runsViewOf(params: URLSearchParams): RunsView {
  const num = (k: string, d: number) => {
    const v = Number(params.get(k) ?? NaN);
    return Number.isInteger(v) && v >= 0 ? v : d;
  };
  return {
    offset: num("offset", 0),
    limit: num("limit", Infinity),
    sort: params.get("sort") || null,
    desc: params.get("desc") === "1",
    q: params.get("q") ?? "",
  };
}

/** Whether a filter is a query (`frechet < 100`) rather than words to find (as the page says). */
const isQuery = (text: string) => /[<>=~]/.test(text);

/** Every results folder's rows, held between requests (decoded again only as they change). */
const held = new Map<string, HeldRuns>();

/** Says a skipped record once per process. */
const skipped = (file: string, problem: string) =>
  note(`ui: skipped ${file}: ${problem} (the other runs are listed)`);

/**
 * Ascending order with empty values last (the page's own order, so the server's pages and a
 * table sorted in the page agree).
 */
function compare(x: unknown, y: unknown): number {
  if (x === y) return 0;
  if (x === null || x === undefined || x === "") return 1;
  if (y === null || y === undefined || y === "") return -1;
  return (x as number) < (y as number) ? -1 : 1;
}

/** A page row's value for the column `key` (as the page sorts by it). */
function sortValue(r: RunsRow, key: string): unknown {
  switch (key) {
    case "run":
      return r.run;
    case "sweep":
      return r.sweep ?? "";
    case "status":
      return r.status;
    case "tags":
      return r.tags.join(",");
    case "trained":
      return r.trainedSeconds;
    case "when":
      return r.trainedAt ?? "";
  }
  return key in r.params ? r.params[key] ?? null : r.figures[key] ?? null;
}

/** The text a row is found by: its name, sweep, status, params, figures, tags and note. */
const rowText = (r: RunsRow) =>
  [
    r.run,
    r.sweep ?? "",
    r.status,
    ...Object.values(r.params).map((v) => typeof v === "string" ? v : JSON.stringify(v)),
    ...Object.values(r.figures).map(String),
    ...r.tags,
    r.note,
  ].join("\n").toLowerCase();

/**
 * The runs page's rows: a page of every run folder, finished or in flight, in the order and
 * filter asked, with how many there are and match. The plain first page (no filter, no sort)
 * comes from the run index without decoding every row; other views from every row, held in
 * memory between requests. A bad query answers `{ error }`.
 */
export async function runsList(app: App, results: string, view: Partial<RunsView> = {}) {
  const { offset = 0, limit = Infinity, sort = null, desc = false, q = "" } = view;
  const sweeps = await sweepOfRuns(results);
  // the page's answer: its rows, how many runs there are and match, the folder's columns
  const answer = (
    facts: ListingFacts,
    total: number,
    matched: number,
    error: string | null,
    runs: RunsRow[],
  ) => ({
    results,
    params: facts.differing.filter((p) => p !== "name"),
    metrics: app.sweep.rankMetrics.filter((m) => facts.metrics.includes(m)),
    tagged: facts.tagged || facts.noted,
    total,
    matched,
    error,
    runs,
  });
  if (!q.trim() && sort === null) {
    const page = await runsPage(app, results, {
      limit: offset + limit,
      rungs: false,
      onSkip: skipped,
    });
    if (page) {
      const params = page.differing.filter((p) => p !== "name");
      const rows = await Promise.all(
        page.ordered.slice(offset).map(({ row }) => pageRow(row, params, sweeps)),
      );
      return answer(page, page.total, page.total, null, rows);
    }
  }
  let h = held.get(results);
  if (!h) held.set(results, h = new HeldRuns(app, results, skipped));
  const { rows: all, facts } = await h.rows();
  const params = facts.differing.filter((p) => p !== "name");
  let error: string | null = null;
  let kept = all;
  if (isQuery(q)) {
    try {
      kept = all.filter(parseQuery(q, { params: configPaths(all), figures: facts.metrics }));
    } catch (e) {
      if (!(e instanceof QueryError)) throw e;
      error = e.message;
      kept = [];
    }
  }
  let rows = await Promise.all(kept.map((row) => pageRow(row, params, sweeps)));
  const words = q.trim().toLowerCase();
  if (words && !isQuery(q)) rows = rows.filter((r) => rowText(r).includes(words));
  if (sort !== null) {
    rows.sort((a, b) => compare(sortValue(a, sort), sortValue(b, sort)) * (desc ? -1 : 1));
  }
  return answer(facts, all.length, rows.length, error, rows.slice(offset, offset + limit));
}

/** A run's row as the runs page shows it (a run in flight: its state and progress asked). */
async function pageRow(
  row: RunRow,
  params: string[],
  sweeps: (run: string) => string | null,
): Promise<RunsRow> {
  const { live, dir } = row;
  const state = live ? await runState(dir, live) : null;
  const running = state === "running";
  return {
    run: row.run,
    status: running
      ? "running"
      : state === "interrupted"
      ? "interrupted"
      : row.status === "ok"
      ? "done"
      : row.status ?? "failed",
    stage: running ? live!.stage : null,
    progress: running ? await liveProgress(dir, live!.stage) : null,
    sweep: sweeps(row.run),
    params: Object.fromEntries(params.map((p) => [p, row.config[p] ?? null])),
    figures: row.figures,
    trainedSeconds: row.trained,
    cachedSeconds: row.cachedSeconds,
    trainedAt: row.trainedAt,
    started: live?.started ?? row.finished ?? null,
    tags: row.tags,
    note: row.note,
  };
}

/** The evaluation figures the run and compare pages show, in this order. */
export const SUMMARY_FIGURES = [
  "goalMarksMet",
  "frechet",
  "bestFrechet",
  "tailFrechet",
  "classifierScore",
  "classesCovered",
  "dReal",
  "dFake",
] as const;

/** One run: its state, config, history rows from `since`, checkpoints and grids. */
export async function runDetail(results: string, name: string, since = 0) {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) return null;
  const dir = join(results, "runs", name);
  const raw = await readJson<unknown>(join(dir, "run.json"));
  // a record of the wrong shape is no record: the page shows what the live folder says
  const record = raw !== null && recordProblem(raw) === null ? raw as RunRecord : null;
  const live = await readLiveStatus(dir);
  if (!record && !live) return null;
  const state = live ? await runState(dir, live) : record!.status === "ok" ? "done" : "failed";
  const adv = artifactsDir(dir, "adversarial");
  // a run in flight: its live rows; a finished one: the cached history (whole and sealed)
  const liveRows = (await readLiveRows(join(dir, "live", "adversarial.jsonl")))
    .filter((r) => r.kind === "iteration");
  const sealed = state === "running"
    ? null
    : await readSealed<Record<string, unknown>[]>(results, artifact(adv, "history"));
  const history = (sealed && sealed.length >= liveRows.length ? sealed : liveRows)
    .filter((r) => (r.iteration as number) > since)
    .map(({ t: _t, kind: _k, of: _o, ...r }) => r);
  const of = (liveRows.at(-1)?.of as number) ??
    (record?.config as { adversarial?: { iterations?: number } })?.adversarial?.iterations ?? null;
  const metrics = state === "running"
    ? null
    : await readSealed<{ checkpoints: Record<string, unknown>[] }>(
      results,
      artifact(artifactsDir(dir, "evaluate"), "metrics"),
    );
  const checkpoints = metrics?.checkpoints ??
    (await readLiveRows(join(dir, "live", "evaluate.jsonl"))).map(({ t: _t, kind: _k, ...r }) => r);
  return {
    run: name,
    state,
    stage: live?.stage ?? null,
    error: live?.error ?? null,
    iterations: of,
    config: record?.config ?? null,
    record: record
      ? {
        started: record.started,
        seconds: record.seconds,
        stages: record.stages.map((s) => ({
          stage: s.stage,
          status: s.status,
          seconds: s.seconds,
          builtSeconds: s.builtSeconds ?? null,
          reason: s.reason,
        })),
        environment: record.environment,
      }
      : null,
    summary: (record?.stages.find((s) => s.stage === "evaluate")?.summary ?? null) as
      | Record<string, unknown>
      | null,
    /** The summary's figures to show, in order. */
    figures: [...SUMMARY_FIGURES],
    history,
    checkpoints,
    grids: await gridsOf(results, dir),
    report: await Deno.stat(artifact(dir, "report")).then(
      () => fileUrl(results, artifact(dir, "report")),
      () => null,
    ),
  };
}

/** The sample grids a run has: the evaluation's, else the loop's live ones. */
async function gridsOf(results: string, dir: string) {
  const grids: { iteration: number | "final"; url: string }[] = [];
  for (
    const [folder, final] of [[artifact(artifactsDir(dir, "evaluate"), "grids"), true], [
      join(dir, "live", "adversarial"),
      false,
    ]] as const
  ) {
    try {
      for await (const e of Deno.readDir(folder)) {
        const m = /^iter_(\d+)\.png$/.exec(e.name);
        if (m) grids.push({ iteration: Number(m[1]), url: fileUrl(results, join(folder, e.name)) });
        else if (final && e.name === "final.png") {
          grids.push({ iteration: "final", url: fileUrl(results, join(folder, e.name)) });
        }
      }
    } catch {
      continue;
    }
    if (grids.length) break;
  }
  const order = (i: number | "final") => (i === "final" ? Infinity : i);
  return grids.sort((a, b) => order(a.iteration) - order(b.iteration));
}

/** A sweep folder's record. */
interface SweepRecord {
  /** The sweep's folder name. */
  name: string;
  /** The name in sweep.json (its points are `<specName>-pNNN`). */
  specName: string;
  dir: string;
  spec: {
    search?: { metric: string; rungs: number[]; resource?: string; eta: number };
    rank?: { metric: string; order?: string };
  };
  points: PointRecord[];
}

/** Every sweep in the results folder. */
export async function listSweeps(results: string): Promise<SweepRecord[]> {
  const out: SweepRecord[] = [];
  try {
    for await (const e of Deno.readDir(join(results, "sweeps"))) {
      if (!e.isDirectory) continue;
      const file = join(results, "sweeps", e.name, "sweep.json");
      const rec = await readJson<Omit<SweepRecord, "dir">>(file);
      if (rec === null) continue; // not written yet, or not JSON: no sweep to show
      const problem = sweepRecordProblem(rec);
      if (problem) {
        note(`ui: skipped ${file}: ${problem}`);
        continue;
      }
      const bad = badPoints(rec.points);
      for (const b of bad) note(`ui: skipped point ${b.at} of ${file}: ${b.problem}`);
      out.push({
        ...rec,
        points: rec.points.filter((_, i) => !bad.some((b) => b.at === i)),
        spec: typeof rec.spec === "object" && rec.spec !== null ? rec.spec : {},
        name: e.name,
        specName: rec.name,
        dir: join(results, "sweeps", e.name),
      });
    }
  } catch {
    // no sweeps yet
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** The sweeps list: each with its points' counts by status. */
export async function sweepsList(results: string) {
  return (await listSweeps(results)).map((s) => ({
    name: s.name,
    points: s.points.length,
    byStatus: Object.fromEntries(
      ["pending", "running", "done", "failed"].map((
        k,
      ) => [k, s.points.filter((p) => p.status === k).length]),
    ),
    stopped: s.points.filter((p) => p.stopped).length,
    search: s.spec.search
      ? `halving on ${s.spec.search.metric}, rungs ${s.spec.search.rungs.join(", ")}`
      : null,
  }));
}

/** Whether a process of the sweep holds its lock (a sweep from before the lock: assume so). */
async function sweepHeld(dir: string): Promise<boolean> {
  return (await lockHeld(join(dir, SWEEP_LOCK))) !== false;
}

/** One sweep: its points with live status, figures, rung figures and why each stopped. */
export async function sweepDetail(app: App, results: string, name: string) {
  const s = (await listSweeps(results)).find((x) => x.name === name);
  if (!s) return null;
  const metric = s.spec.search?.metric ?? s.spec.rank?.metric ?? app.sweep.defaultRank;
  const points = [];
  for (const p of s.points) {
    const live = p.runDir ? await readLiveStatus(p.runDir) : null;
    const running = p.status === "running" && live && p.runDir &&
      (await runState(p.runDir, live)) === "running";
    points.push({
      label: `p${String(p.index).padStart(3, "0")}`,
      overrides: p.overrides,
      // sweep.json says running until the sweep resumes: with nobody holding the sweep's lock
      // (every running point holds it), its sweep was killed
      status: p.status === "pending"
        ? "queued"
        : p.status === "running" && !running && !(await sweepHeld(s.dir))
        ? "interrupted"
        : p.status,
      stage: running ? live!.stage : null,
      progress: running && p.runDir ? await liveProgress(p.runDir, live!.stage) : null,
      figures: app.figures(p.summaries),
      rungFigures: p.rungFigures ?? null,
      stopped: p.stopped ?? null,
      error: p.error,
      run: p.runDir ? basename(p.runDir) : null,
    });
  }
  return {
    name: s.name,
    metric,
    higherIsBetter: app.sweep.higherIsBetter.includes(metric),
    search: s.spec.search ?? null,
    resource: s.spec.search?.resource ?? app.sweep.resource ?? null,
    knobs: [...new Set(s.points.flatMap((p) => Object.keys(p.overrides)))],
    report: fileUrl(results, artifact(s.dir, "report")),
    points,
    goals: await goalBySetting(s.points, join(results, "cache"), s.spec.search?.rungs),
  };
}
