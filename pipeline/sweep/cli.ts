/**
 * `deno task sweep <file> [options]`, `sweep status <file>`, `sweep cancel <file>`: the
 * command line only. It parses the options, prepares the sweep (prepared.ts) and hands it to
 * an executor (executor.ts: local; slurm.ts: a Slurm job array).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { jobsOf } from "./cli.ts";
 * assert.equal(jobsOf("3"), 3);
 * assert.throws(() => jobsOf("0"), /--jobs 0: expected an integer >= 1/);
 * ```
 */
import type { App } from "../app.ts";
import { parseCommand } from "../args.ts";
import { UsageError } from "../errors.ts";
import { type Executor, localExecutor } from "./executor.ts";
import { compareWithSearch } from "./full_grid.ts";
import { describePlan, finish, prepare } from "./prepared.ts";
import { multirunSpec } from "./multirun.ts";
import { runHalvingSearch } from "./search.ts";
import type { SweepSource } from "./spec.ts";
import { cancelSlurm, slurmExecutor, type SlurmOptions, slurmStatus } from "./slurm.ts";

const USAGE = `usage: deno task sweep <sweep.json> [options]
       deno task sweep --base CONFIG -m path=v1,v2 [seed=1,2 ...] [options]   (multirun)
       deno task sweep status <sweep.json> [--results DIR]   (a Slurm sweep's progress; report when done)
       deno task sweep cancel <sweep.json> [--results DIR]   (scancel a Slurm sweep's job)
  --base CONFIG          multirun: sweep this config over the axes given as path=v1,v2,...
                         (values are JSON, else strings; seed=... sets the seeds); the same sweep
                         as a file with this base, grid and seeds (status/cancel take them too)
  -m, --multirun         accepted for Hydra's habit; --base is what makes a multirun
  --name NAME            multirun: the sweep's name (default: the config file's name)
  --search halving       multirun: successive halving, with --rungs 20,60 [--metric M] [--eta 3]
  --jobs N               local: run N points at once, in separate processes (default 1)
  --threads-per-point T  local: compute threads per point (default: the cores shared among the
                         jobs, at least 1; the application's thread variable, if set, wins)
  --dry-run              list the points and what each can reuse from the cache; run nothing
  --full-grid            leave out the "search" block: run every point to the last rung (the
                         full grid a halving search is measured against; shares its cache)
  --results DIR          results folder (default: results)
  --backend NAME         override every point's backend
  --executor NAME        local (default) or slurm: one job array, a task per pending point
  --partition P          slurm: the partition (default: the cluster's default)
  --max-parallel K       slurm: at most K tasks at once (--array=...%K)
  --time T               slurm: each task's time limit (e.g. 2:00:00)
  --cpus-per-task C      slurm: CPUs per task, also each task's threads (default 2)
  --sbatch-arg ARG       slurm: one more sbatch argument (repeatable), e.g. --sbatch-arg=--mem=8G
  --requeue              slurm: let Slurm requeue a task whose node fails (it resumes)
  --detach               slurm: submit and return; follow with 'sweep status'
  --cancel-on-interrupt  slurm: Ctrl-C while waiting cancels the job without asking`;

/** The parsed options (see {@link sweepCommand}). */
interface Values {
  jobs: string;
  "dry-run": boolean;
  "full-grid": boolean;
  results: string;
  backend?: string;
  executor: string;
  partition?: string;
  "max-parallel"?: string;
  time?: string;
  "cpus-per-task": string;
  "sbatch-arg": string[];
  requeue: boolean;
  detach: boolean;
  "cancel-on-interrupt": boolean;
  "threads-per-point"?: string;
  base?: string;
  multirun: boolean;
  name?: string;
  search?: string;
  rungs?: string;
  metric?: string;
  eta?: string;
}

/** A whole number >= 1 from an option, or a usage error naming the option. */
function positiveInt(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    throw new UsageError(`${flag} ${text}: expected an integer >= 1`, USAGE);
  }
  return n;
}

/** `--jobs N`. */
export const jobsOf = (text: string) => positiveInt("--jobs", text);

/** The Slurm executor's settings from the command line. */
function slurmOptions(values: Values): SlurmOptions {
  return {
    partition: values.partition,
    maxParallel: values["max-parallel"] === undefined
      ? undefined
      : positiveInt("--max-parallel", values["max-parallel"]),
    time: values.time,
    cpusPerTask: positiveInt("--cpus-per-task", values["cpus-per-task"]),
    sbatchArgs: values["sbatch-arg"],
    requeue: values.requeue,
    backend: values.backend,
    detach: values.detach,
    cancelOnInterrupt: values["cancel-on-interrupt"],
  };
}

/**
 * The compute threads each point of a local sweep runs on: `asked`, else the cores shared among
 * the jobs (at least 1), so `--jobs N` fills the cores without oversubscribing them.
 */
export function threadsPerPoint(cores: number, jobs: number, asked?: number): number {
  return asked ?? Math.max(1, Math.floor(cores / jobs));
}

/**
 * Sets the points' thread count through the application's variable (the children inherit it,
 * and the plan's keys, made here, name it) and says which runs share cache entries with them:
 * the key names the thread count, because results differ in the last bits between thread
 * counts. An application without the variable computes as it does.
 */
function shareCores(app: App, values: Values): string | null {
  const variable = app.threadsVariable;
  if (!variable) return null;
  const env = Deno.env.get(variable);
  const asked = values["threads-per-point"];
  if (asked === undefined && env !== undefined) {
    return `each point runs on ${variable}=${env}, from the environment`;
  }
  const cores = navigator.hardwareConcurrency, jobs = jobsOf(values.jobs);
  const t = threadsPerPoint(
    cores,
    jobs,
    asked === undefined ? undefined : positiveInt("--threads-per-point", asked),
  );
  Deno.env.set(variable, String(t));
  const plain = t === cores
    ? "as a plain run here does"
    : `a plain run here uses ${cores} (the core count); ${variable}=${t} deno task run ... shares the points' entries`;
  return `each point runs on ${t} thread${t === 1 ? "" : "s"} (${jobs} job${
    jobs === 1 ? "" : "s"
  } on ${cores} cores); tensor stages share cache entries only with runs on ${t}: ${plain}`;
}

/** The executor the options name. */
function executorOf(values: Values): Executor {
  if (values.executor === "local") {
    return localExecutor({ jobs: jobsOf(values.jobs), backend: values.backend });
  }
  if (values.executor === "slurm") return slurmExecutor(slurmOptions(values));
  throw new UsageError(`--executor ${values.executor}: expected local or slurm`, USAGE);
}

/** The sweep the positionals and options name: a file, or a multirun's spec. */
function sourceOf(app: App, values: Values, positionals: string[]): SweepSource {
  if (values.base === undefined) {
    if (
      values.multirun || values.name || values.search || values.rungs || values.metric || values.eta
    ) {
      throw new UsageError(
        "-m, --name and --search make a multirun: they need --base CONFIG",
        USAGE,
      );
    }
    if (positionals.length !== 1) throw new UsageError("expected one sweep file", USAGE);
    return positionals[0];
  }
  const spec = multirunSpec(values.base, positionals, values, USAGE, app.sweep.defaultRank);
  return { spec, src: `multirun over ${values.base}` };
}

/** `sweep status` and `sweep cancel` of a Slurm sweep. */
async function slurmCommand(app: App, verb: string, file: SweepSource, values: Values) {
  const s = await prepare(app, file, values.results, values.backend);
  if (verb === "cancel") return await cancelSlurm(s);
  return (await slurmStatus(s)) ? await finish(s) : 0;
}

/** Runs the sweep command; returns the exit code (1 when a point failed). */
export async function sweepCommand(app: App, args: string[]): Promise<number> {
  const parsed = parseCommand<Values>(args, USAGE, {
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
    "threads-per-point": { type: "string" },
    base: { type: "string" },
    multirun: { type: "boolean", short: "m", default: false },
    name: { type: "string" },
    search: { type: "string" },
    rungs: { type: "string" },
    metric: { type: "string" },
    eta: { type: "string" },
  }, { positionals: true });
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  const [first] = positionals;
  if ((first === "status" || first === "cancel") && positionals.length >= 2) {
    return await slurmCommand(app, first, sourceOf(app, values, positionals.slice(1)), values);
  }
  const source = sourceOf(app, values, positionals);
  const exec = executorOf(values);
  // before anything plans: the plan's keys name the points' thread count
  const threads = values.executor === "local" ? shareCores(app, values) : null;
  const s = await prepare(app, source, values.results, values.backend, {
    dryRun: values["dry-run"],
    fullGrid: values["full-grid"],
  });
  describePlan(s);
  if (threads) console.log(threads);
  if (values["dry-run"]) {
    console.log(s.dir);
    return 0;
  }
  await s.save();
  const search = s.sweep.spec.search;
  if (search) {
    if (values.detach) {
      throw new UsageError("a halving search decides as it goes: it cannot --detach", USAGE);
    }
    await runHalvingSearch(s, search, exec);
    return await finish(s);
  }
  if (!(await exec.runAll(s))) return 0;
  const code = await finish(s);
  if (values["full-grid"]) await compareWithSearch(app, source, values.results, s);
  return code;
}
