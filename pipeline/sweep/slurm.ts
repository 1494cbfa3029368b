/**
 * The Slurm executor: a sweep's pending points become one job array (`sbatch --array`), each
 * task running its point through the application's CLI against the shared results folder,
 * so the cache's file locks and seals work across nodes as they do across processes. Tasks
 * write their results to `<sweep>/points/<point>.json` (one writer each); the submitter, or
 * `sweep status`, merges them into sweep.json and writes the same report as the local
 * executor. A task that Slurm stops (scancel, time limit, node failure) leaves its run's
 * checkpoint; re-submitting runs only unfinished points, and those resume.
 *
 * @example
 * ```ts
 * import { arraySpec } from "./slurm.ts";
 * import assert from "node:assert/strict";
 * assert(arraySpec(4, 2) === "0-3%2" && arraySpec(1) === "0-0");
 * ```
 */
import { join, resolve } from "node:path";
import type { App } from "../app.ts";
import { onInterrupt } from "../interrupt.ts";
import { StageError, UsageError } from "../errors.ts";
import { Progress } from "../progress.ts";
import { hostName, writeFileAtomic } from "../store.ts";
import type { Executor } from "./executor.ts";
import { readJson, runAndRecord, SWEEP_PERMISSIONS } from "./point.ts";
import { pointLine, pointName, pointRunDir, type PreparedSweep } from "./prepared.ts";
import type { Point, PointRecord } from "../point_record.ts";

/** The executor's settings (from the command line). */
export interface SlurmOptions {
  partition?: string;
  maxParallel?: number;
  time?: string;
  cpusPerTask: number;
  sbatchArgs: string[];
  requeue: boolean;
  backend?: string;
  detach: boolean;
  cancelOnInterrupt: boolean;
}

/** What a submission records in `<sweep>/slurm/job.json`, and what each task reads. */
interface JobFile {
  jobId: string;
  submitted: string;
  entry: string;
  basePath: string;
  results: string;
  backend?: string;
  /** Array task index -> the point it runs (and its result file under points/, if not `<name>.json`). */
  tasks: { index: number; name: string; overrides: Point; result?: string }[];
}

/** The `--array` value: tasks 0..n-1, at most `max` at once. */
export function arraySpec(n: number, max?: number): string {
  return `0-${n - 1}${max ? `%${max}` : ""}`;
}

const slurmDir = (dir: string) => join(dir, "slurm");
const pointsDir = (dir: string) => join(dir, "points");

/** Runs a Slurm command; a missing command is a usage error that says what to install. */
async function slurm(cmd: string, args: string[]) {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    const dec = new TextDecoder();
    return {
      code: out.code,
      stdout: dec.decode(out.stdout).trim(),
      stderr: dec.decode(out.stderr).trim(),
    };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new UsageError(
        `no ${cmd} on PATH: the Slurm executor needs Slurm's client commands (Debian: apt-get install slurm-client); or use --executor local`,
      );
    }
    throw e;
  }
}

async function checkPartition(p: string): Promise<void> {
  const r = await slurm("sinfo", ["-h", "-o", "%P"]);
  if (r.code !== 0) throw new UsageError(`sinfo failed: ${r.stderr || r.stdout}`);
  const names = r.stdout.split("\n").map((l) => l.trim().replace(/\*$/, "")).filter(Boolean);
  if (!names.includes(p)) {
    throw new UsageError(`--partition ${p}: no such partition; partitions: ${names.join(", ")}`);
  }
}

/** Merges the results tasks wrote into the sweep's records. */
async function mergeResults(s: PreparedSweep): Promise<void> {
  for (const r of s.records) {
    if (r.status === "done") continue;
    const got = await readJson<PointRecord>(join(pointsDir(s.dir), `${pointName(s, r)}.json`));
    if (got && (got.status === "done" || got.status === "failed")) Object.assign(r, got);
  }
}

/** Array task index -> Slurm state, for the job's tasks still in the queue. */
async function queued(jobId: string): Promise<Map<number, string>> {
  const r = await slurm("squeue", ["-h", "-r", "-j", jobId, "-o", "%K %T"]);
  const out = new Map<number, string>();
  if (r.code !== 0) return out; // a finished job is no longer known to squeue
  for (const line of r.stdout.split("\n")) {
    const [k, state] = line.trim().split(/\s+/);
    if (k && /^\d+$/.test(k)) out.set(Number(k), state);
  }
  return out;
}

async function seenCount(dir: string): Promise<number> {
  let n = 0;
  try {
    for await (const _ of Deno.readDir(join(slurmDir(dir), "seen"))) n++;
  } catch { /* none yet */ }
  return n;
}

/**
 * One look at a submitted job: merges finished tasks' results, marks tasks that left the
 * queue without one as failed (with their log), and counts. Returns whether every task is
 * resolved.
 */
async function poll(s: PreparedSweep, job: JobFile): Promise<{ done: boolean; line: string }> {
  const q = await queued(job.jobId); // before reading results: a task writes, then leaves
  await mergeResults(s);
  const counts = { done: 0, running: 0, pending: 0, failed: 0 };
  let vanished = 0;
  for (const [a, t] of job.tasks.entries()) {
    const r = s.records[t.index];
    if (r.status === "done") counts.done++;
    else if (q.has(a) && q.get(a) === "RUNNING") {
      counts.running++;
      // the ui follows a running task through its run folder's live/ (a shared filesystem)
      r.status = "running";
      r.runDir ??= pointRunDir(s, r);
    } else if (q.has(a)) counts.pending++;
    else if (r.status === "failed") counts.failed++;
    else {
      vanished++;
      counts.failed++;
      r.status = "failed";
      r.log = join(slurmDir(s.dir), `${job.jobId}_${a}.out`);
      r.error =
        `the Slurm task ended without a result (cancelled, out of time, or its node failed); log ${r.log}; re-submit to resume it from its last checkpoint`;
    }
  }
  if (vanished && vanished === job.tasks.length && await seenCount(s.dir) === 0) {
    throw new StageError(
      `no Slurm task of job ${job.jobId} could see the results folder ${job.results}: it must be on a filesystem every compute node mounts at the same path (NFSv4, Lustre, BeeGFS), with POSIX locks`,
    );
  }
  const line =
    `slurm job ${job.jobId}: ${counts.done} done, ${counts.running} running, ${counts.pending} pending, ${counts.failed} failed`;
  return { done: counts.running + counts.pending === 0, line };
}

function cancelNow(jobId: string): void {
  new Deno.Command("scancel", { args: [jobId] }).outputSync();
}

/** Submits the sweep's unfinished points as one job array; waits unless `detach`. */
export async function submitSlurm(s: PreparedSweep, o: SlurmOptions): Promise<boolean> {
  if (o.partition) await checkPartition(o.partition);
  await mergeResults(s);
  const todo = s.records.filter((r) => r.status !== "done");
  const progress = new Progress();
  if (!todo.length) {
    progress.log("every point is done and cached; nothing to submit");
    return true;
  }
  const sdir = slurmDir(s.dir);
  await Deno.mkdir(join(sdir, "seen"), { recursive: true });
  await Deno.mkdir(pointsDir(s.dir), { recursive: true });
  await Deno.mkdir(join(s.dir, "logs"), { recursive: true });
  for (const r of todo) {
    await Deno.remove(join(pointsDir(s.dir), `${pointName(s, r)}.json`)).catch(() => {});
    Object.assign(r, { status: "pending", error: null, runDir: null });
  }
  for await (const e of Deno.readDir(join(sdir, "seen"))) {
    await Deno.remove(join(sdir, "seen", e.name)).catch(() => {});
  }
  const job = await submitJob(s, o, {
    tasks: todo.map((r) => ({ index: r.index, name: pointName(s, r), overrides: r.overrides })),
    base: join(sdir, "job"),
    jobName: s.sweep.name,
  });
  await s.save();
  progress.log(
    `submitted Slurm job ${job.jobId}: ${todo.length} tasks (--array=${
      arraySpec(todo.length, o.maxParallel)
    }), ${o.cpusPerTask} CPUs each; task logs in ${sdir}`,
  );
  if (o.detach) {
    progress.log(
      `follow it with: deno task sweep status <sweep.json>; cancel with: deno task sweep cancel <sweep.json>`,
    );
    return false;
  }
  const stop = onInterrupt(() => {
    let cancel = o.cancelOnInterrupt;
    if (!cancel && Deno.stdin.isTerminal()) {
      cancel = (prompt(`\ncancel Slurm job ${job.jobId}? [y/N]`) ?? "").trim().toLowerCase() ===
        "y";
    }
    if (cancel) {
      cancelNow(job.jobId);
      console.error(`cancelled Slurm job ${job.jobId}; re-submitting resumes unfinished points`);
    } else {
      console.error(
        `Slurm job ${job.jobId} keeps running: 'deno task sweep status <sweep.json>' follows it, 'deno task sweep cancel <sweep.json>' cancels it`,
      );
    }
    return false; // exit 130 as usual
  });
  try {
    let last = "";
    const reported = new Set<number>();
    for (;;) {
      const { done, line } = await poll(s, job);
      for (const t of job.tasks) {
        const r = s.records[t.index];
        if ((r.status === "done" || r.status === "failed") && !reported.has(t.index)) {
          reported.add(t.index);
          progress.log(pointLine(s, r));
        }
      }
      if (line !== last) {
        progress.log(line);
        last = line;
        await s.save();
      }
      if (done) break;
      await new Promise((r) => setTimeout(r, 2000));
    }
  } finally {
    stop();
  }
  await s.save();
  return true;
}

/**
 * Writes `<base>.json` (what the tasks read) and `<base>.sh`, submits the array with sbatch and
 * records the job id; a job Slurm refuses is a usage error with its message.
 */
async function submitJob(
  s: PreparedSweep,
  o: SlurmOptions,
  { tasks, base, jobName }: {
    tasks: JobFile["tasks"];
    /** The job's files, without their endings (`<base>.json`, `<base>.sh`). */
    base: string;
    jobName: string;
  },
): Promise<JobFile> {
  const job: JobFile = {
    jobId: "",
    submitted: new Date().toISOString(),
    entry: s.app.entry,
    basePath: resolve(s.sweep.basePath),
    results: resolve(s.results),
    backend: o.backend,
    tasks,
  };
  await writeFileAtomic(`${base}.json`, JSON.stringify(job, null, 2) + "\n");
  await writeFileAtomic(
    `${base}.sh`,
    jobScript(s, o, { name: jobName, job, jobFile: `${base}.json` }),
  );
  const sub = await slurm("sbatch", ["--parsable", ...o.sbatchArgs, `${base}.sh`]);
  if (sub.code !== 0) throw new UsageError(`Slurm rejected the job: ${sub.stderr || sub.stdout}`);
  job.jobId = sub.stdout.split(";")[0].trim();
  await writeFileAtomic(`${base}.json`, JSON.stringify(job, null, 2) + "\n");
  return job;
}

function jobScript(
  s: PreparedSweep,
  o: SlurmOptions,
  { name, job, jobFile }: { name: string; job: JobFile; jobFile: string },
): string {
  const app: App = s.app, dir = s.dir;
  const q = (x: string) => `'${x.replaceAll("'", `'\\''`)}'`;
  const entry = job.entry.startsWith("file:") ? new URL(job.entry).pathname : job.entry;
  const lines = [
    "#!/bin/bash",
    `#SBATCH --job-name=${name.replace(/[^A-Za-z0-9._-]/g, "_")}`,
    `#SBATCH --array=${arraySpec(job.tasks.length, o.maxParallel)}`,
    `#SBATCH --output=${join(resolve(slurmDir(dir)), "%A_%a.out")}`,
    `#SBATCH --cpus-per-task=${o.cpusPerTask}`,
    ...(o.partition ? [`#SBATCH --partition=${o.partition}`] : []),
    ...(o.time ? [`#SBATCH --time=${o.time}`] : []),
    ...(o.requeue ? ["#SBATCH --requeue"] : []),
    `# ${app.name} sweep: each task runs one point; see job.json`,
    ...(app.threadsVariable ? [`export ${app.threadsVariable}=${o.cpusPerTask}`] : []),
    `exec ${q(Deno.execPath())} run ${SWEEP_PERMISSIONS.join(" ")} ${q(entry)} sweep-task ${
      q(resolve(dir))
    } "$SLURM_ARRAY_TASK_ID" ${q(resolve(jobFile))}`,
  ];
  return lines.join("\n") + "\n";
}

/** A Slurm task: runs array task `task` of the sweep in `dir`; returns the exit code. */
export async function runSlurmTask(
  dir: string,
  task: number,
  jobFile = join(dir, "slurm", "job.json"),
): Promise<number> {
  const job = await readJson<JobFile>(jobFile);
  if (!job || !job.tasks[task]) {
    console.error(`error: no task ${task} in ${jobFile}`);
    return 2;
  }
  // the submitter looks for this to tell a task that ran from a folder nodes cannot see
  await writeFileAtomic(
    join(slurmDir(dir), "seen", `${task}`),
    JSON.stringify({ host: hostName(), job: Deno.env.get("SLURM_JOB_ID") ?? null }),
  );
  const t = job.tasks[task];
  const r: PointRecord = {
    index: t.index,
    overrides: t.overrides,
    status: "running",
    runDir: null,
    error: null,
    seconds: null,
    summaries: {},
    keys: {},
  };
  const tag = `${Deno.env.get("SLURM_ARRAY_JOB_ID") ?? job.jobId}_${task}`;
  await runAndRecord({
    entry: job.entry,
    basePath: job.basePath,
    results: job.results,
    backend: job.backend,
    name: t.name,
    logPath: join(dir, "logs", `${t.name}.${tag}.log`),
    sweepDir: dir,
  }, r);
  await writeFileAtomic(
    join(pointsDir(dir), t.result ?? `${t.name}.json`),
    JSON.stringify(r, null, 2) + "\n",
  );
  console.log(`${t.name} ${r.status}${r.error ? `: ${r.error}` : ""}`);
  return r.status === "done" ? 0 : 1;
}

/** `sweep status`: merges what the tasks wrote; returns whether the job has finished. */
export async function slurmStatus(s: PreparedSweep): Promise<boolean> {
  const job = await readJson<JobFile>(join(slurmDir(s.dir), "job.json"));
  if (!job?.jobId) {
    throw new UsageError(
      `no Slurm job recorded for this sweep (${join(slurmDir(s.dir), "job.json")})`,
    );
  }
  const { done, line } = await poll(s, job);
  await s.save();
  console.log(line);
  if (!done) console.log(s.dir);
  return done;
}

/** `sweep cancel`: scancel the sweep's job. */
export async function cancelSlurm(s: PreparedSweep): Promise<number> {
  const job = await readJson<JobFile>(join(slurmDir(s.dir), "job.json"));
  if (!job?.jobId) {
    throw new UsageError(
      `no Slurm job recorded for this sweep (${join(slurmDir(s.dir), "job.json")})`,
    );
  }
  const r = await slurm("scancel", [job.jobId]);
  if (r.code !== 0) throw new UsageError(`scancel ${job.jobId} failed: ${r.stderr || r.stdout}`);
  console.log(
    `cancelled Slurm job ${job.jobId}; re-submitting the sweep runs only unfinished points, which resume from their checkpoints`,
  );
  return 0;
}

/**
 * Runs one point (with the overrides in `r`) as its own one-task Slurm job and waits for its
 * result, which it writes into `r`. For searches that decide what to run next as results
 * arrive (halving). `active` collects the job ids in flight, for Ctrl-C.
 */
export async function runOneOnSlurm(
  s: PreparedSweep,
  o: SlurmOptions,
  { r, name, tag, active }: {
    /** The point's record, filled from the task's result. */
    r: PointRecord;
    name: string;
    /** Tells this run's files apart from the point's other rungs'. */
    tag: string;
    /** The job ids in flight (for Ctrl-C). */
    active: Set<string>;
  },
): Promise<void> {
  const jobs = join(slurmDir(s.dir), "jobs");
  await Deno.mkdir(jobs, { recursive: true });
  await Deno.mkdir(join(slurmDir(s.dir), "seen"), { recursive: true });
  await Deno.mkdir(pointsDir(s.dir), { recursive: true });
  await Deno.mkdir(join(s.dir, "logs"), { recursive: true });
  const result = join(pointsDir(s.dir), `${name}.${tag}.json`);
  await Deno.remove(result).catch(() => {});
  const job = await submitJob(s, o, {
    tasks: [{ index: r.index, name, overrides: r.overrides, result: `${name}.${tag}.json` }],
    base: join(jobs, `${name}.${tag}`),
    jobName: `${s.sweep.name}-${tag}`,
  });
  active.add(job.jobId);
  try {
    for (;;) {
      const q = await queued(job.jobId);
      const got = await readJson<PointRecord>(result);
      if (got) {
        Object.assign(r, got);
        return;
      }
      if (!q.size) {
        r.status = "failed";
        r.log = join(slurmDir(s.dir), `${job.jobId}_0.out`);
        r.error =
          `the Slurm task ended without a result (cancelled, out of time, or its node failed); log ${r.log}`;
        return;
      }
      await new Promise((res) => setTimeout(res, 1000));
    }
  } finally {
    active.delete(job.jobId);
  }
}

/** Ctrl-C while Slurm jobs run: cancel them (asking on a terminal unless told), then exit. */
export function cancelOnCtrlC(active: Set<string>, cancelWithoutAsking: boolean): () => void {
  return onInterrupt(() => {
    const ids = [...active];
    let cancel = cancelWithoutAsking;
    if (!cancel && ids.length && Deno.stdin.isTerminal()) {
      cancel = (prompt(`\ncancel Slurm job(s) ${ids.join(" ")}? [y/N]`) ?? "").trim()
        .toLowerCase() === "y";
    }
    if (cancel) {
      for (const id of ids) cancelNow(id);
      console.error(`cancelled Slurm job(s) ${ids.join(" ")}; re-running the sweep resumes`);
    } else if (ids.length) {
      console.error(`Slurm job(s) ${ids.join(" ")} keep running; 'scancel' stops them`);
    }
    return false;
  });
}

/**
 * The Slurm executor: all of a sweep's points as one job array; for a halving search, each
 * rung run as its own one-task job, `maxParallel` (default 4) in flight, and Ctrl-C offers to
 * cancel the jobs in flight.
 */
export function slurmExecutor(o: SlurmOptions): Executor {
  const active = new Set<string>();
  let stop: (() => void) | null = null;
  return {
    slots: o.maxParallel ?? 4,
    runAll: (s) => submitSlurm(s, o),
    runOne: (s, at, name, tag) => {
      stop ??= cancelOnCtrlC(active, o.cancelOnInterrupt);
      return runOneOnSlurm(s, o, { r: at, name, tag, active });
    },
    close: () => stop?.(),
  };
}
