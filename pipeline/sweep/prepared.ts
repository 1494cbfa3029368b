/**
 * A sweep made ready to run, whatever executes it: its points expanded, each planned against
 * the cache, its records resumed from sweep.json (a settled point keeps its status and
 * figures), and, at the end, its report.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sameSearchBlock } from "./prepared.ts";
 * const search = { method: "halving" as const, metric: "loss", eta: 3, rungs: [10, 30] };
 * assert(sameSearchBlock({ search }, { search: { ...search } }));
 * assert(!sameSearchBlock({ search }, {}));
 * ```
 */
import { join } from "node:path";
import { type App, runtimeOf } from "../app.ts";
import { canonicalJson } from "../hash.ts";
import { Progress } from "../progress.ts";
import { planRun, runDirOf, type StagePlan } from "../runner.ts";
import type { EngineConfig } from "../schema.ts";
import { checkResultsDir, Store, writeFileAtomic } from "../store.ts";
import { readJson } from "./point.ts";
import { showValue, textTable } from "../runs_table.ts";
import { badPoints, type PointRecord, sweepRecordProblem } from "../point_record.ts";
import {
  type LoadedSweep,
  loadSweep,
  overridesOf,
  sweepDir,
  type SweepSource,
  type SweepSpec,
} from "./spec.ts";

/** A sweep made ready to run: its points' records (resumed), plans and where it lives. */
export interface PreparedSweep {
  app: App;
  sweep: LoadedSweep;
  dir: string;
  results: string;
  store: Store;
  plans: StagePlan[][];
  records: PointRecord[];
  /** `--backend`: every point's backend, overriding its config's. */
  backend?: string;
  /** Writes sweep.json. */
  save(): Promise<void>;
}

/**
 * The run folder a point's run writes: its config with `at`'s overrides (a halving rung's
 * length) and the executor's backend.
 */
export function pointRunDir(s: PreparedSweep, at: PointRecord, backend = s.backend): string {
  const cfg = structuredClone(s.sweep.configs[at.index]) as unknown as Record<string, unknown>;
  for (const [path, value] of Object.entries(at.overrides)) {
    const keys = path.split(".");
    let o = cfg;
    for (const k of keys.slice(0, -1)) o = o[k] as Record<string, unknown>;
    o[keys.at(-1)!] = value;
  }
  if (backend) cfg.backend = backend;
  return runDirOf(s.results, cfg as unknown as EngineConfig).dir;
}

/** The sweep's point name of record `r`. */
export const pointName = (s: PreparedSweep, r: PointRecord) => s.sweep.configs[r.index].name;

/** Expands the sweep, plans every point against the cache and resumes sweep.json. */
export async function prepare(
  app: App,
  file: SweepSource,
  results: string,
  backend: string | undefined,
  { dryRun = false, fullGrid = false } = {},
): Promise<PreparedSweep> {
  // the file first: a rejected sweep leaves no results folder behind
  const sweep = await loadSweep(file, join(results, "sweeps"), app, { fullGrid });
  await checkResultsDir(results, { write: !dryRun });
  const dir = sweepDir(results, sweep);
  const store = new Store(results);
  const plans: StagePlan[][] = [];
  for (const cfg of sweep.configs) {
    // `--backend` is shorthand for the points' `backend` field, as on `run`
    const c = backend ? { ...cfg, backend } : cfg;
    const { runtime } = await runtimeOf(app, c);
    plans.push(await planRun({ cfg: c, stages: app.stages, results, runtime }));
  }
  const recordPath = join(dir, "sweep.json");
  const read = await readJson<{ spec?: SweepSpec; points: PointRecord[] }>(recordPath);
  // a record of the wrong shape resumes nothing (said in one line); bad points rerun
  const problem = read === null ? null : sweepRecordProblem(read);
  if (problem) {
    new Progress().log(`${recordPath}: ${problem}; the sweep starts over (cached runs are reused)`);
  }
  const previous = problem ? null : read;
  const bad = new Set(badPoints(previous?.points ?? []).map((b) => b.at));
  for (const at of bad) {
    new Progress().log(`${recordPath}: point ${at} is not a point record; it runs again`);
  }
  // a search's figures stand only for the search that made them (metric, eta, rungs, order)
  const sameSearch = sameSearchBlock(previous?.spec, sweep.spec);
  if (previous && sweep.spec.search && !sameSearch) {
    new Progress().log(
      `the search block changed since ${recordPath} was written: the search starts over (runs still cached are reused)`,
    );
  }
  const records: PointRecord[] = sweep.points.map((overrides, index) => ({
    index,
    overrides,
    status: "pending",
    runDir: null,
    error: null,
    seconds: null,
    summaries: {},
    keys: {},
  }));
  // resume: a point that finished before and whose results are all still cached is done; a
  // halving search keeps every figure it had, so its decisions stand
  for (const r of records) {
    const old = bad.has(r.index) ? undefined : previous?.points?.[r.index];
    if (old && !sameSearch) {
      delete old.rungFigures;
      delete old.stopped;
    }
    if (old?.status === "done" && plans[r.index].every((p) => p.cached)) Object.assign(r, old);
    else if (sweep.spec.search && old?.rungFigures) {
      // a settled point keeps its status; only one killed while running starts again
      Object.assign(r, old, { status: old.status === "running" ? "pending" : old.status });
    }
  }
  const save = async () => {
    await Deno.mkdir(dir, { recursive: true });
    await writeFileAtomic(
      recordPath,
      JSON.stringify(
        { name: sweep.name, basePath: sweep.basePath, spec: sweep.spec, points: records },
        null,
        2,
      ) + "\n",
    );
  };
  return { app, sweep, dir, results, store, plans, records, save, backend };
}

/** Prints the points and what each reuses from the cache or shares with others. */
export function describePlan(s: PreparedSweep): void {
  const shared = new Map<string, number>();
  for (const plan of s.plans) {
    for (const p of plan) {
      shared.set(`${p.stage}/${p.id}`, (shared.get(`${p.stage}/${p.id}`) ?? 0) + 1);
    }
  }
  const distinct = new Set(
    s.plans.flatMap((plan) => plan.filter((p) => !p.cached).map((p) => `${p.stage}/${p.id}`)),
  );
  console.log(
    `sweep ${s.sweep.name}: ${s.sweep.points.length} points, ${distinct.size} stage runs needed (the rest cached or shared)`,
  );
  s.sweep.points.forEach((p, i) => {
    const plan = s.plans[i];
    const cached = plan.filter((x) => x.cached).map((x) => x.stage);
    const sharedWith = plan.filter((x) => !x.cached && (shared.get(`${x.stage}/${x.id}`) ?? 0) > 1)
      .map((x) => x.stage);
    console.log(
      `  p${String(i).padStart(3, "0")}  ${overridesOf(p).join(" ") || "(base)"}\n        cached: ${
        cached.join(", ") || "none"
      }${sharedWith.length ? `; shared with other points: ${sharedWith.join(", ")}` : ""}`,
    );
  });
}

/** One line per finished point, for progress. */
export function pointLine(s: PreparedSweep, r: PointRecord): string {
  return `${pointName(s, r)} ${r.status}${
    r.seconds !== null ? ` in ${r.seconds.toFixed(1)}s` : ""
  }${r.error ? `: ${r.error}` : ""}  (${overridesOf(r.overrides).join(" ")})`;
}

/** Whether two sweep records' search blocks agree (a search's figures stand only for its own). */
export const sameSearchBlock = (a: SweepSpec | undefined, b: SweepSpec | undefined) =>
  canonicalJson(a?.search ?? null) === canonicalJson(b?.search ?? null);

/** Points the ranked summary shows on the terminal (the report has them all). */
const RANKED_ROWS = 10;

/**
 * The finished points best first by the sweep's rank figure, as a table for the terminal: the
 * figure, a few others, the point's settings. Empty when no point has the figure.
 */
export function rankedTable(
  s: Pick<PreparedSweep, "records" | "app" | "sweep">,
  rank: { metric: string; order: "asc" | "desc" },
): string {
  const rows = s.records.filter((r) => r.status === "done").map((r) => ({
    r,
    f: s.app.figures(r.summaries),
  })).filter(({ f }) => typeof f[rank.metric] === "number");
  if (rows.length === 0) return "";
  const sign = rank.order === "asc" ? 1 : -1;
  rows.sort((a, b) => sign * (a.f[rank.metric]! - b.f[rank.metric]!));
  const others = s.app.sweep.rankMetrics.filter((m) =>
    m !== rank.metric && rows.some(({ f }) => typeof f[m] === "number")
  ).slice(0, 3);
  const show = (v: number | undefined) => (v === undefined ? "-" : showValue(v));
  const body = rows.slice(0, RANKED_ROWS).map(({ r, f }, i) => [
    String(i + 1),
    show(f[rank.metric]),
    ...others.map((m) => show(f[m])),
    overridesOf(r.overrides).join(" ") || s.sweep.configs[r.index].name,
  ]);
  const head = [
    "#",
    `${rank.metric} (${rank.order === "asc" ? "low" : "high"} first)`,
    ...others,
    "setting",
  ];
  const more = rows.length > RANKED_ROWS
    ? `\n(${rows.length - RANKED_ROWS} more in the report)`
    : "";
  return textTable(head, body) + more;
}

/** Writes the report; returns the exit code (1 when a point failed). */
export async function finish(s: PreparedSweep): Promise<number> {
  const metric = s.sweep.spec.rank?.metric ?? s.app.sweep.defaultRank;
  const rank = {
    metric,
    order: s.sweep.spec.rank?.order ??
      (s.app.sweep.higherIsBetter.includes(metric) ? "desc" as const : "asc" as const),
  };
  await s.save();
  const what = {
    dir: s.dir,
    name: s.sweep.name,
    points: s.records,
    rank,
    cacheRoot: s.store.root,
    ...(s.sweep.spec.search
      ? {
        search: {
          resource: s.sweep.spec.search.resource ?? s.app.sweep.resource ?? "",
          rungs: s.sweep.spec.search.rungs,
        },
      }
      : {}),
  };
  const report = await s.app.sweep.writeReport(what);
  const failed = s.records.filter((r) => r.status === "failed").length;
  new Progress().log(
    `${s.records.length - failed} of ${s.records.length} points done${
      failed ? `, ${failed} failed` : ""
    }`,
  );
  const table = rankedTable(s, rank);
  if (table) console.log(table);
  for (const line of (await s.app.sweep.summary?.(what)) ?? []) console.log(line);
  console.log(report);
  return failed ? 1 : 0;
}
