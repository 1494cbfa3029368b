/**
 * `deno task sweep <file> [options]`, `sweep status <file>`, `sweep cancel <file>`. Both
 * executors share one code path for point expansion, the cache plan, resume and the report:
 * `local` runs points as subprocesses here (`--jobs N` at once), `slurm` submits one job
 * array over the shared results folder (`slurm/executor.ts`).
 *
 * @example
 * ```ts
 * import { sweepCommand } from "./sweep_cli.ts";
 * import assert from "node:assert/strict";
 * assert(typeof sweepCommand === "function");
 * ```
 */
import { parseArgs } from "node:util";
import { dirname, join } from "node:path";
import type { App } from "./app.ts";
import { type BackendName, selectBackend } from "./backends/mod.ts";
import { UsageError } from "./errors.ts";
import { Progress } from "./progress.ts";
import { planRun, type StagePlan } from "./runner.ts";
import { checkResultsDir, Store, writeFileAtomic } from "./store.ts";
import {
  type HalvingSearch,
  type LoadedSweep,
  loadSweep,
  overridesOf,
  type PointRecord,
  runPoint,
  sweepDir,
  type SweepSpec,
} from "./sweep.ts";
import { compareHalving, runHalving } from "./halving.ts";
import { canonicalJson } from "./hash.ts";
import {
  cancelOnCtrlC,
  cancelSlurm,
  runOneOnSlurm,
  type SlurmOptions,
  slurmStatus,
  submitSlurm,
} from "./slurm/executor.ts";

const USAGE = `usage: deno task sweep <sweep.json> [options]
       deno task sweep status <sweep.json> [--results DIR]   (a Slurm sweep's progress; report when done)
       deno task sweep cancel <sweep.json> [--results DIR]   (scancel a Slurm sweep's job)
  --jobs N               local: run N points at once, in separate processes (default 1)
  --dry-run              list the points and what each can reuse from the cache; run nothing
  --full-grid            leave out the "search" block: run every point to the last rung (the
                         full grid a halving search is measured against; shares its cache)
  --results DIR          results folder (default: results)
  --backend NAME         override every point's backend
  --executor NAME        local (default) or slurm: one job array, a task per pending point
  --partition P          slurm: the partition (default: the cluster's default)
  --max-parallel K       slurm: at most K tasks at once (--array=...%K)
  --time T               slurm: each task's time limit (e.g. 2:00:00)
  --cpus-per-task C      slurm: CPUs per task, also OPENBLAS_NUM_THREADS (default 2)
  --sbatch-arg ARG       slurm: one more sbatch argument (repeatable), e.g. --sbatch-arg=--mem=8G
  --requeue              slurm: let Slurm requeue a task whose node fails (it resumes)
  --detach               slurm: submit and return; follow with 'sweep status'
  --cancel-on-interrupt  slurm: Ctrl-C while waiting cancels the job without asking`;

/** Reads JSON, or null when the file is missing or not JSON. */
export async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch {
    return null;
  }
}

/** A sweep made ready to run: its points' records (resumed), plans and where it lives. */
export interface PreparedSweep {
  app: App;
  sweep: LoadedSweep;
  dir: string;
  results: string;
  store: Store;
  plans: StagePlan[][];
  records: PointRecord[];
  /** Writes sweep.json. */
  save(): Promise<void>;
}

/** The sweep's point name of record `r`. */
export const pointName = (s: PreparedSweep, r: PointRecord) => s.sweep.configs[r.index].name;

/** Expands the sweep, plans every point against the cache and resumes sweep.json. */
async function prepare(
  app: App,
  file: string,
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
    const b = await selectBackend((backend ?? cfg.backend) as BackendName, {
      flushDenormals: cfg.flushDenormals,
    });
    plans.push(await planRun({ cfg, stages: app.stages, results, runtime: b.runtime }));
  }
  const recordPath = join(dir, "sweep.json");
  const previous = await readJson<{ spec?: SweepSpec; points: PointRecord[] }>(recordPath);
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
    const old = previous?.points?.[r.index];
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
  return { app, sweep, dir, results, store, plans, records, save };
}

/** Prints the points and what each reuses from the cache or shares with others. */
function describePlan(s: PreparedSweep): void {
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

/**
 * Runs one point through the application's CLI and fills its record from the run (status,
 * run folder, stage keys and summaries, or the error). Both executors use it.
 */
export async function runAndRecord(
  ctx: { entry: string; basePath: string; results: string },
  r: PointRecord,
  name: string,
  log: string,
  backend?: string,
): Promise<void> {
  const t0 = performance.now();
  r.log = log;
  const res = await runPoint(ctx.entry, ctx.basePath, r.overrides, name, ctx.results, log, backend);
  r.seconds = (performance.now() - t0) / 1000;
  if (res.ok) {
    r.runDir = res.lastLine.endsWith("report.html") ? dirname(res.lastLine) : res.lastLine;
    const rec = await readJson<{ stages: { stage: string; key: string; summary?: unknown }[] }>(
      join(r.runDir, "run.json"),
    );
    for (const st of rec?.stages ?? []) {
      r.keys[st.stage] = st.key;
      if (st.summary) r.summaries[st.stage] = st.summary;
    }
    r.status = "done";
    r.error = null;
  } else {
    r.status = "failed";
    r.error = res.error;
  }
}

/** One line per finished point, for progress. */
export function pointLine(s: PreparedSweep, r: PointRecord): string {
  return `${pointName(s, r)} ${r.status}${
    r.seconds !== null ? ` in ${r.seconds.toFixed(1)}s` : ""
  }${r.error ? `: ${r.error}` : ""}  (${overridesOf(r.overrides).join(" ")})`;
}

async function runLocal(s: PreparedSweep, jobs: number, backend?: string): Promise<void> {
  const progress = new Progress();
  const todo = s.records.filter((r) => r.status !== "done");
  if (todo.length < s.records.length) {
    progress.log(`${s.records.length - todo.length} points already done; running ${todo.length}`);
  }
  await Deno.mkdir(join(s.dir, "logs"), { recursive: true });
  let next = 0, finished = 0;
  const worker = async () => {
    while (next < todo.length) {
      const r = todo[next++];
      r.status = "running";
      await s.save();
      const name = pointName(s, r);
      const ctx = { entry: s.app.entry, basePath: s.sweep.basePath, results: s.results };
      await runAndRecord(ctx, r, name, join(s.dir, "logs", `${name}.${Deno.pid}.log`), backend);
      finished++;
      progress.log(`[${finished}/${todo.length}] ${pointLine(s, r)}`);
      await s.save();
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, todo.length) }, worker));
}

/**
 * A halving search on either executor: locally `jobs` runs at once; on Slurm each rung run is
 * its own one-task job, `maxParallel` (default 4) in flight.
 */
async function runHalvingSearch(
  s: PreparedSweep,
  h: HalvingSearch,
  jobs: number,
  backend: string | undefined,
  slurmOpts: SlurmOptions | null,
): Promise<void> {
  const progress = new Progress();
  const resource = h.resource ?? s.app.sweep.resource!;
  await Deno.mkdir(join(s.dir, "logs"), { recursive: true });
  const higher = s.app.sweep.higherIsBetter.includes(h.metric);
  const active = new Set<string>();
  const stop = slurmOpts ? cancelOnCtrlC(active, slurmOpts.cancelOnInterrupt) : () => {};
  const slots = slurmOpts ? slurmOpts.maxParallel ?? 4 : jobs;
  const { spent, full } = await runHalving(s.records, h, higher, slots, async (r, rung) => {
    const name = pointName(s, r);
    const at: PointRecord = { ...r, overrides: { ...r.overrides, [resource]: h.rungs[rung] } };
    const ctx = { entry: s.app.entry, basePath: s.sweep.basePath, results: s.results };
    r.status = "running";
    await s.save();
    if (slurmOpts) await runOneOnSlurm(s, at, name, `r${rung}`, slurmOpts, active);
    else {
      await runAndRecord(
        ctx,
        at,
        name,
        join(s.dir, "logs", `${name}.r${rung}.${Deno.pid}.log`),
        backend,
      );
    }
    const figure = at.status === "done" ? s.app.figures(at.summaries)[h.metric] ?? null : null;
    Object.assign(r, { ...at, overrides: r.overrides });
    progress.log(
      `rung ${rung} (${resource}=${h.rungs[rung]}): ${pointLine(s, r)}${
        figure !== null ? `; ${h.metric} ${figure.toPrecision(4)}` : ""
      }`,
    );
    return figure;
  }, () => s.save()).finally(stop);
  progress.log(
    `halving spent ${spent} of the full grid's ${full} ${resource} (${
      (100 * spent / full).toFixed(0)
    }%)`,
  );
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
  const report = await s.app.sweep.writeReport(
    s.dir,
    s.sweep.name,
    s.records,
    rank,
    s.store.root,
  );
  const failed = s.records.filter((r) => r.status === "failed").length;
  new Progress().log(
    `${s.records.length - failed} of ${s.records.length} points done${
      failed ? `, ${failed} failed` : ""
    }`,
  );
  console.log(report);
  return failed ? 1 : 0;
}

/** Runs the sweep command; returns the exit code (1 when a point failed). */
export async function sweepCommand(app: App, args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        jobs: { type: "string", default: "1" },
        "dry-run": { type: "boolean", default: false },
        "full-grid": { type: "boolean", default: false },
        results: { type: "string", default: "results" },
        backend: { type: "string" },
        executor: { type: "string", default: "local" },
        partition: { type: "string" },
        "max-parallel": { type: "string" },
        time: { type: "string" },
        "cpus-per-task": { type: "string", default: "2" },
        "sbatch-arg": { type: "string", multiple: true, default: [] },
        requeue: { type: "boolean", default: false },
        detach: { type: "boolean", default: false },
        "cancel-on-interrupt": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const [first, second] = positionals;
  if ((first === "status" || first === "cancel") && positionals.length === 2) {
    const s = await prepare(app, second, values.results, values.backend);
    if (first === "cancel") return await cancelSlurm(s);
    const done = await slurmStatus(s);
    return done ? await finish(s) : 0;
  }
  if (positionals.length !== 1) throw new UsageError(`expected one sweep file\n${USAGE}`);
  const jobs = Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1) {
    throw new UsageError(`--jobs ${values.jobs}: expected an integer >= 1`);
  }
  if (values.executor !== "local" && values.executor !== "slurm") {
    throw new UsageError(`--executor ${values.executor}: expected local or slurm`);
  }
  const s = await prepare(app, first, values.results, values.backend, {
    dryRun: values["dry-run"],
    fullGrid: values["full-grid"],
  });
  describePlan(s);
  if (values["dry-run"]) {
    console.log(s.dir);
    return 0;
  }
  await s.save();
  const search = s.sweep.spec.search;
  if (search && values.executor === "local") {
    await runHalvingSearch(s, search, jobs, values.backend, null);
    return await finish(s);
  }
  if (values.executor === "local") {
    await runLocal(s, jobs, values.backend);
    const code = await finish(s);
    if (values["full-grid"]) await compareWithSearch(app, first, values.results, s);
    return code;
  }
  const cpus = Number(values["cpus-per-task"]);
  if (!Number.isInteger(cpus) || cpus < 1) {
    throw new UsageError(`--cpus-per-task ${values["cpus-per-task"]}: expected an integer >= 1`);
  }
  const maxParallel = values["max-parallel"] === undefined
    ? undefined
    : Number(values["max-parallel"]);
  if (maxParallel !== undefined && (!Number.isInteger(maxParallel) || maxParallel < 1)) {
    throw new UsageError(`--max-parallel ${values["max-parallel"]}: expected an integer >= 1`);
  }
  const opts: SlurmOptions = {
    partition: values.partition,
    maxParallel,
    time: values.time,
    cpusPerTask: cpus,
    sbatchArgs: values["sbatch-arg"],
    requeue: values.requeue,
    backend: values.backend,
    detach: values.detach,
    cancelOnInterrupt: values["cancel-on-interrupt"],
  };
  if (search) {
    if (opts.detach) {
      throw new UsageError("a halving search decides as it goes: it cannot --detach");
    }
    await runHalvingSearch(s, search, jobs, values.backend, opts);
    return await finish(s);
  }
  const done = await submitSlurm(s, opts);
  if (!done) return 0;
  const code = await finish(s);
  if (values["full-grid"]) await compareWithSearch(app, first, values.results, s);
  return code;
}

/** Whether two sweep records' search blocks agree (a search's figures stand only for its own). */
const sameSearchBlock = (a: SweepSpec | undefined, b: SweepSpec | undefined) =>
  canonicalJson(a?.search ?? null) === canonicalJson(b?.search ?? null);

/**
 * After a `--full-grid` run: what the same file's halving search found and spent beside
 * the grid's best (the search's sweep.json, where it has run in this results folder).
 */
async function compareWithSearch(app: App, file: string, results: string, grid: PreparedSweep) {
  const searched = await loadSweep(file, join(results, "sweeps"), app);
  const h = searched.spec.search!;
  const dir = sweepDir(results, searched);
  const rec = await readJson<{ spec?: SweepSpec; points: PointRecord[] }>(join(dir, "sweep.json"));
  const log = new Progress();
  if (!rec?.points?.some((p) => p.rungFigures)) {
    log.log(
      `no halving search of this file in ${results} yet: run it without --full-grid to compare`,
    );
    return;
  }
  if (!sameSearchBlock(rec.spec, searched.spec)) {
    log.log(
      `the halving search in ${dir} was made with another search block: run it again without --full-grid to compare`,
    );
    return;
  }
  const higher = app.sweep.higherIsBetter.includes(h.metric);
  const c = compareHalving(
    rec.points.map((p) => p.rungFigures ?? h.rungs.map(() => null)),
    grid.records.map((r) =>
      r.status === "done" ? app.figures(r.summaries)[h.metric] ?? null : null
    ),
    h.rungs,
    higher,
  );
  const name = (i: number) => `p${String(i).padStart(3, "0")}`;
  const show = (b: { point: number; figure: number } | null) =>
    b ? `${name(b.point)} (${h.metric} ${b.figure.toPrecision(4)})` : "no point";
  const same = c.halving && c.grid && c.halving.point === c.grid.point;
  const behind = !same && c.halving && c.grid && c.rankInGrid !== null
    ? `, ranked ${c.rankInGrid} of ${grid.records.length} in the grid, ${
      Math.abs(c.halving.figure - c.grid.figure).toPrecision(3)
    } (${(100 * Math.abs(c.halving.figure / c.grid.figure - 1)).toFixed(1)}%) behind its best`
    : "";
  log.log(
    `halving (${dir}) found ${show(c.halving)} with ${c.spent} of ${c.full} ${
      h.resource ?? app.sweep.resource
    } (${Math.round((100 * c.spent) / c.full)}%); the full grid's best is ${show(c.grid)}: ${
      same ? "the same point" : `a different point${behind}`
    }`,
  );
}
