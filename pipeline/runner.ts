/**
 * The runner walks the stage graph in order. For each stage it computes the key from what
 * the stage depends on (see plan.ts), once the stages it needs have their outputs; it reuses
 * a cached entry or runs the stage into a sealed one, and writes the run record `run.json`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { selectStages } from "./runner.ts";
 * const a = { name: "a", needs: [] as string[] }, b = { name: "b", needs: ["a"] };
 * assert.deepEqual(selectStages([a, b] as never[], [], "a").map((s: { name: string }) => s.name), ["a"]);
 * assert.throws(() => selectStages([b, a] as never[]), /needs a/);
 * ```
 */
import { join } from "node:path";
import type { EngineConfig } from "./schema.ts";
import { isDiskFull, StageError, UsageError } from "./errors.ts";
import { hashValue } from "./hash.ts";
import {
  type PlanContext,
  planStage,
  previousRun,
  type Resolved,
  resolvedOf,
  type StagePlan,
} from "./plan.ts";
import { Progress } from "./progress.ts";
import {
  linkArtifacts,
  publishReport,
  type ReportHandoff,
  type RunRecord,
  type StageRecord,
} from "./run_record.ts";
import { markRunChanged } from "./run_index.ts";
import { LIVE_HEARTBEAT_MS, LiveLog, type LiveStatus, writeLiveStatus } from "./live.ts";
import type { Runtime, Stage, StageContext } from "./stage.ts";
import { ResumableState } from "./resumable.ts";
import { type EntryMeta, Store, writeFileAtomic } from "./store.ts";

export type { RunRecord, StagePlan, StageRecord };

/** Options of a run. */
export interface RunOptions<C extends EngineConfig = EngineConfig> {
  cfg: C;
  stages: Stage<C>[];
  results: string;
  runtime: Runtime;
  /** Extra facts for run.json (backend choice and why, versions). */
  environment?: Record<string, unknown>;
  force?: string[];
  until?: string;
  progress?: Progress;
  /** Compare every cached file's SHA-256 with its seal, not only its size. */
  verify?: boolean;
  /** The report the last stage makes, published into the run folder (the App's). */
  report?: ReportHandoff;
}

/** Checks stage names, order and `--force`/`--until`; returns the stages up to `until`. */
export function selectStages<S extends Stage<never>>(
  stages: S[],
  force: string[] = [],
  until?: string,
): S[] {
  const names = stages.map((s) => s.name);
  const seen = new Set<string>();
  for (const s of stages) {
    for (const n of s.needs) {
      if (!seen.has(n)) {
        throw new Error(`stage ${s.name} needs ${n}, which does not come before it`);
      }
    }
    seen.add(s.name);
  }
  for (const f of force) {
    if (f !== "all" && !names.includes(f)) {
      throw new UsageError(`--force ${f}: no such stage; stages: ${names.join(", ")}, all`);
    }
  }
  if (until === undefined) return stages;
  const i = names.indexOf(until);
  if (i < 0) throw new UsageError(`--until ${until}: no such stage; stages: ${names.join(", ")}`);
  return stages.slice(0, i + 1);
}

/** The planning context of a run: its store, forced stages and this config's previous run. */
async function planContext<C extends EngineConfig>(opts: RunOptions<C>): Promise<PlanContext<C>> {
  const store = new Store(opts.results);
  return {
    cfg: opts.cfg,
    store,
    runtime: opts.runtime,
    forced: new Set(opts.force ?? []),
    verify: opts.verify,
    previous: await previousRun(opts.results, opts.cfg.name, store),
  };
}

/**
 * Plans every stage without running anything. A stage after one that must run has no key
 * yet (`key: null`): its plan says what it waits for.
 */
export async function planRun<C extends EngineConfig>(opts: RunOptions<C>): Promise<StagePlan[]> {
  return planAll(await planContext(opts), selectStages(opts.stages, opts.force, opts.until));
}

async function planAll<C extends EngineConfig>(
  ctx: PlanContext<C>,
  stages: Stage<C>[],
): Promise<StagePlan[]> {
  const upstream: Record<string, Resolved | string> = {};
  const plans: StagePlan[] = [];
  for (const s of stages) {
    const plan = await planStage(s, ctx, upstream);
    upstream[s.name] = plan.entry ? resolvedOf(s, plan.entry, false) : plan.id;
    plans.push(plan);
  }
  return plans;
}

/**
 * Removes `*.tmp` files a killed run left in a run folder. Records are written in
 * milliseconds, so one older than a minute has no live writer.
 */
async function removeStaleTemps(dir: string): Promise<void> {
  const cutoff = Date.now() - 60_000;
  for (const d of [dir, join(dir, "records")]) {
    try {
      for await (const e of Deno.readDir(d)) {
        if (!e.isFile || !e.name.endsWith(".tmp")) continue;
        const p = join(d, e.name);
        const st = await Deno.stat(p);
        if ((st.mtime?.getTime() ?? 0) < cutoff) await Deno.remove(p).catch(() => {});
      }
    } catch { /* no such folder yet */ }
  }
}

/** Refuses to commit an entry missing one of the stage's declared outputs. */
async function checkOutputs<C extends EngineConfig>(
  stage: Stage<C>,
  cfg: C,
  dir: string,
): Promise<void> {
  for (const out of stage.outputs?.(cfg) ?? []) {
    try {
      await Deno.stat(join(dir, out));
    } catch {
      throw new StageError(
        `did not write its declared output ${out}; nothing was committed (a bug in the stage)`,
      );
    }
  }
}

/** The run folder of a config: `<results>/runs/<name>-<12 hex of the resolved config>`. */
export function runDirOf(results: string, cfg: EngineConfig): { dir: string; hash: string } {
  const hash = hashValue(cfg);
  return { dir: join(results, "runs", `${cfg.name}-${hash.slice(0, 12)}`), hash };
}

/** What one stage's turn gives the run: its line in run.json and its outputs for later stages. */
interface StageOutcome {
  record: StageRecord;
  resolved: Resolved;
}

/** One run in progress: what its stages share. */
interface RunState<C extends EngineConfig> {
  opts: RunOptions<C>;
  ctx: PlanContext<C>;
  progress: Progress;
  /**
   * Shared locks on the entries this run reads (`stage/key` -> release), so `gc` leaves them
   * alone until it ends.
   */
  holds: Map<string, () => void>;
  /** Entries whose every file this run has hashed and found as sealed (`stage/key`). */
  verified: Set<string>;
  /** The run folder, and what its `live/status.json` says now. */
  runDir?: string;
  live?: LiveStatus;
}

/** An entry a stage was about to compute from no longer matches its seal. */
class DamagedInput extends Error {
  override readonly name = "DamagedInput";
  constructor(readonly stage: string, readonly key: string, readonly problem: string) {
    super(`input ${stage}/${key.slice(0, 12)} is damaged: ${problem}`);
  }
}

/**
 * Hashes every file of the entries a stage is about to compute from (once per run; an entry
 * this run built is fresh), so no result is ever computed from bits that differ from their
 * seal. A damaged one is set aside, and the run goes back to rebuild it.
 */
async function verifyInputs<C extends EngineConfig>(
  st: RunState<C>,
  stage: Stage<C>,
  done: Record<string, Resolved>,
): Promise<void> {
  for (const n of stage.needs) {
    const { key, ran } = done[n];
    if (ran || st.verified.has(`${n}/${key}`)) continue;
    const check = await st.ctx.store.check(n, key, { hash: true });
    if (check.state === "ok") {
      st.verified.add(`${n}/${key}`);
      continue;
    }
    const problem = check.state === "damaged" ? check.problem : "the entry is gone";
    if (check.state === "damaged") {
      const where = await st.ctx.store.quarantine(n, key, problem).catch(() => "(left in place)");
      st.progress.log(
        `[${stage.name}] its input ${n}/${
          key.slice(0, 12)
        } is damaged (${problem}); moved to ${where}; rebuilding ${n} first`,
      );
    }
    throw new DamagedInput(n, key, problem);
  }
}

/** Uses a cached entry (the caller holds it against gc until the run ends). */
function useCached<C extends EngineConfig>(
  stage: Stage<C>,
  plan: StagePlan,
  { meta, why, progress }: { meta: EntryMeta; why: string; progress: Progress },
): StageOutcome {
  const key = plan.key!;
  progress.log(`[${stage.name}] ${why === "cached" ? "cached" : why} (${key.slice(0, 12)})`);
  return {
    record: {
      stage: stage.name,
      key,
      status: "cached",
      reason: why,
      seconds: 0,
      builtSeconds: meta.seconds,
      inputs: plan.inputs,
      summary: meta.summary,
    },
    resolved: resolvedOf(stage, meta, false),
  };
}

/** Sets a damaged entry aside (kept for inspection) before it is rebuilt; call under its lock. */
async function setAsideDamaged<C extends EngineConfig>(
  st: RunState<C>,
  stage: Stage<C>,
  key: string,
): Promise<void> {
  const check = await st.ctx.store.check(stage.name, key, { hash: st.opts.verify });
  if (check.state !== "damaged") return;
  const where = await st.ctx.store.quarantine(stage.name, key, check.problem);
  st.progress.log(
    `[${stage.name}] damaged cache entry ${
      key.slice(0, 12)
    }: ${check.problem}; moved to ${where}; rebuilding`,
  );
}

/**
 * The shorter entry a build continues, checked bit for bit against its seal and held (so `gc`
 * leaves it) until the run ends. A damaged one is set aside, said in one line, and the stage
 * runs from the beginning.
 */
async function continuable<C extends EngineConfig>(
  st: RunState<C>,
  stage: Stage<C>,
  plan: StagePlan,
): Promise<StageContext["continueFrom"]> {
  const from = plan.continueFrom, store = st.ctx.store;
  if (!from) return undefined;
  await holdEntry(st, stage.name, from.key);
  const check = await store.check(stage.name, from.key, { hash: true });
  if (check.state === "ok") return { ...from, dir: store.dir(stage.name, from.key) };
  releaseEntry(st, stage.name, from.key);
  if (check.state === "damaged") {
    const where = await store.quarantine(stage.name, from.key, check.problem);
    st.progress.log(
      `[${stage.name}] the cached entry ${
        from.key.slice(0, 12)
      } it would continue is damaged: ${check.problem}; moved to ${where}; running from the beginning`,
    );
  }
  return undefined;
}

/** Runs a stage into a temporary folder and commits it as a sealed entry. */
async function build<C extends EngineConfig>(
  st: RunState<C>,
  stage: Stage<C>,
  plan: StagePlan,
  inputs: Record<string, string>,
): Promise<StageOutcome> {
  const { store } = st.ctx, key = plan.key!, cfg = st.opts.cfg;
  const forced = st.ctx.forced.has(stage.name) || st.ctx.forced.has("all");
  // this run's own hold on the entry (taken when its plan saw it cached) must not block it
  releaseEntry(st, stage.name, key);
  // Another process (a sweep's parallel point) may be computing the same entry: wait for it.
  const release = await store.lock(stage.name, key, {
    force: forced,
    hash: st.opts.verify,
    onWait: () =>
      st.progress.log(`[${stage.name}] waiting for another process computing the same entry`),
  });
  if (!release) {
    await holdEntry(st, stage.name, key);
    const meta = await store.meta(stage.name, key);
    const why = "cached (computed by another process)";
    return useCached(stage, plan, { meta: meta!, why, progress: st.progress });
  }
  try {
    if (!forced) await setAsideDamaged(st, stage, key);
    st.progress.log(`[${stage.name}] running: ${plan.reason}`);
    const t0 = performance.now();
    const tmp = await store.begin(stage.name, key);
    const workDir = store.workDir(stage.name, key);
    const live = st.runDir ? LiveLog.open(st.runDir, stage.name) : LiveLog.none();
    try {
      const summary = await stage.run({
        cfg,
        outDir: tmp,
        inputs,
        resume: new ResumableState(workDir, (line) => st.progress.log(`[${stage.name}] ${line}`)),
        live,
        progress: st.progress,
        runtime: st.opts.runtime,
        continueFrom: await continuable(st, stage, plan),
      }) ?? undefined;
      st.progress.done();
      const seconds = (performance.now() - t0) / 1000;
      await checkOutputs(stage, cfg, tmp);
      const meta = await store.commit(stage.name, key, tmp, {
        stage: stage.name,
        key,
        inputs: plan.inputs,
        upstreamKeys: plan.upstreamKeys,
        seconds,
        created: new Date().toISOString(),
        summary,
      });
      await Deno.remove(workDir, { recursive: true }).catch(() => {});
      st.progress.log(`[${stage.name}] done in ${seconds.toFixed(1)}s`);
      return {
        record: {
          stage: stage.name,
          key,
          status: "ran",
          reason: plan.reason,
          seconds,
          inputs: plan.inputs,
          summary,
        },
        resolved: resolvedOf(stage, meta, true),
      };
    } catch (e) {
      st.progress.done();
      await store.abandon(tmp);
      throw Object.assign(e instanceof Error ? e : new Error(String(e)), {
        stageSeconds: (performance.now() - t0) / 1000,
      });
    } finally {
      live.close();
    }
  } finally {
    await release();
  }
}

/** The error a failed stage ends the run with: it names the stage and, where it can, the fix. */
function failureError(failure: unknown, stage: string): Error {
  let msg = failure instanceof Error ? failure.message : String(failure);
  const full = isDiskFull(failure);
  if (failure instanceof Deno.errors.NotFound || full) {
    msg = `${msg.split("\n")[0]}; ${
      full
        ? "the disk is full: free space (or use --results on another disk) and run again"
        : "a file it needs is gone: run again to rebuild what is missing"
    } (nothing half-written is kept; a long stage resumes from its last checkpoint)`;
  }
  if (failure instanceof Error && "exitCode" in failure) {
    // keep the original class (a DataError stays one) but name the stage
    failure.message = `stage ${stage}: ${msg}`;
    return failure;
  }
  return new StageError(`stage ${stage} failed: ${msg}`);
}

function newRecord<C extends EngineConfig>(opts: RunOptions<C>, runDir: string, hash: string) {
  const record: RunRecord = {
    name: opts.cfg.name,
    runDir,
    configHash: hash,
    seed: opts.cfg.seed,
    config: opts.cfg,
    stages: [],
    started: new Date().toISOString(),
    finished: null,
    seconds: 0,
    status: "ok",
    environment: { ...opts.environment, runtime: opts.runtime.facts },
  };
  return record;
}

/**
 * Writes run.json (the latest run's record) and the run's own copy under records/, so two
 * runs of one config at the same time both keep what they did.
 */
async function writeRecord(record: RunRecord): Promise<void> {
  const own = join(
    record.runDir,
    "records",
    `${record.started.replace(/[:.]/g, "-")}-${Deno.pid}.json`,
  );
  const text = JSON.stringify(record, null, 2) + "\n";
  await Deno.mkdir(join(record.runDir, "records"), { recursive: true });
  await writeFileAtomic(own, text);
  await writeFileAtomic(join(record.runDir, "run.json"), text);
  await markRunChanged(record.runDir);
}

/**
 * Holds every entry the run's plan already knows it will use (a shared lock each), so `gc`
 * cannot remove one while an earlier stage is still running.
 */
async function holdPlan<C extends EngineConfig>(st: RunState<C>): Promise<void> {
  // sizes only: each stage is checked again, hashes included under --verify, when its turn comes
  const stages = selectStages(st.opts.stages, st.opts.force, st.opts.until);
  for (const p of await planAll({ ...st.ctx, verify: false }, stages)) {
    if (p.cached) await holdEntry(st, p.stage, p.key!);
  }
}

/** Holds an entry once for the rest of the run. */
async function holdEntry<C extends EngineConfig>(
  st: RunState<C>,
  stage: string,
  key: string,
): Promise<void> {
  if (!st.holds.has(`${stage}/${key}`)) {
    st.holds.set(`${stage}/${key}`, await st.ctx.store.hold(stage, key));
  }
}

/** Lets go of an entry this run held (it is about to be set aside and rebuilt). */
function releaseEntry<C extends EngineConfig>(st: RunState<C>, stage: string, key: string): void {
  st.holds.get(`${stage}/${key}`)?.();
  st.holds.delete(`${stage}/${key}`);
}

/**
 * A shared lock on the run folder's `.lock` while the run writes to it: `gc` removes a run
 * folder only when it can take that lock alone.
 */
async function holdRunDir(runDir: string): Promise<() => void> {
  const file = await Deno.open(join(runDir, ".lock"), { create: true, write: true });
  await file.lock(false);
  return () => file.close();
}

/** One stage's turn: plan it now that its inputs exist, then use its entry or build it. */
async function runStage<C extends EngineConfig>(
  st: RunState<C>,
  stage: Stage<C>,
  done: Record<string, Resolved>,
): Promise<StageOutcome> {
  let plan: StagePlan | undefined;
  try {
    plan = await planStage(stage, st.ctx, done);
    const inputs = Object.fromEntries(
      stage.needs.map((n) => [n, st.ctx.store.dir(n, done[n].key)]),
    );
    if (plan.cached) {
      // held before it is read again, so gc cannot take it between the plan and its use
      await holdEntry(st, stage.name, plan.key!);
      const check = await st.ctx.store.check(stage.name, plan.key!);
      // under --verify the plan has just hashed it: a later stage need not hash it again
      if (check.state === "ok" && st.opts.verify) st.verified.add(`${stage.name}/${plan.key}`);
      if (check.state === "ok") {
        return useCached(stage, plan, {
          meta: check.meta,
          why: plan.reason,
          progress: st.progress,
        });
      }
    }
    await verifyInputs(st, stage, done);
    return await build(st, stage, plan, inputs);
  } catch (e) {
    if (e instanceof DamagedInput) throw e;
    // the record of a failed stage keeps its key and why it ran
    const err = e instanceof Error ? e : new Error(String(e));
    throw Object.assign(err, { stagePlan: plan });
  }
}

/** Runs the pipeline; returns the run record (also written to run.json). */
export async function runPipeline<C extends EngineConfig>(opts: RunOptions<C>): Promise<RunRecord> {
  const st: RunState<C> = {
    opts,
    ctx: await planContext(opts),
    progress: opts.progress ?? new Progress(),
    holds: new Map(),
    verified: new Set(),
  };
  const stages = selectStages(opts.stages, opts.force, opts.until);
  const { dir: runDir, hash } = runDirOf(opts.results, opts.cfg);
  await Deno.mkdir(runDir, { recursive: true });
  await removeStaleTemps(runDir);
  const record = newRecord(opts, runDir, hash);
  record.complete = stages.length === opts.stages.length;
  st.holds.set("run folder", await holdRunDir(runDir));
  st.runDir = runDir;
  const now = new Date().toISOString();
  st.live = {
    state: "running",
    pid: Deno.pid,
    started: record.started,
    updated: now,
    stage: null,
    stages: stages.map((s) => s.name),
  };
  await writeLiveStatus(runDir, st.live);
  // a heartbeat: a status not refreshed for a while belongs to a run that was killed
  const heartbeat = setInterval(() => {
    if (st.live) writeLiveStatus(runDir, { ...st.live, updated: new Date().toISOString() });
  }, LIVE_HEARTBEAT_MS);
  try {
    return await runStages(st, stages, record);
  } finally {
    clearInterval(heartbeat);
  }
}

/** The stages in order, each cached or run; the record written at the end. */
async function runStages<C extends EngineConfig>(
  st: RunState<C>,
  stages: Stage<C>[],
  record: RunRecord,
): Promise<RunRecord> {
  await holdPlan(st);
  const done: Record<string, Resolved> = {};
  const rebuilt = new Set<string>();
  let failure: { error: unknown; stage: string } | null = null;
  for (let i = 0; i < stages.length; i++) {
    const stage = stages[i];
    st.live = { ...st.live!, stage: stage.name, updated: new Date().toISOString() };
    await writeLiveStatus(st.runDir!, st.live);
    try {
      const out = await runStage(st, stage, done);
      record.stages.push(out.record);
      done[stage.name] = out.resolved;
    } catch (e) {
      if (e instanceof DamagedInput && !rebuilt.has(e.stage)) {
        // back to the damaged stage: it is rebuilt, and the stages after it planned again
        rebuilt.add(e.stage);
        i = stages.findIndex((s) => s.name === e.stage) - 1;
        record.stages.splice(i + 1);
        continue;
      }
      const { stageSeconds = 0, stagePlan: plan } = e as {
        stageSeconds?: number;
        stagePlan?: StagePlan;
      };
      record.stages.push({
        stage: stage.name,
        key: plan?.key ?? "",
        status: "failed",
        reason: plan?.reason ?? "",
        seconds: stageSeconds,
        inputs: plan?.inputs,
        error: (e as Error).message,
      });
      for (const rest of stages.slice(i + 1)) {
        record.stages.push({
          stage: rest.name,
          key: "",
          status: "skipped",
          reason: `${stage.name} failed`,
          seconds: 0,
        });
      }
      record.status = "failed";
      failure = { error: e, stage: stage.name };
      break;
    }
  }
  for (const release of st.holds.values()) release();
  record.finished = new Date().toISOString();
  record.seconds = (Date.now() - Date.parse(record.started)) / 1000;
  try {
    await writeRecord(record);
    await linkArtifacts(record, st.ctx.store);
  } catch (e) {
    // a stage's failure (a full disk, say) is the news; the record failing after it is not
    if (!failure) throw e;
    st.progress.log(`could not write the run record: ${(e as Error).message}`);
  }
  st.live = {
    ...st.live!,
    state: failure ? "failed" : "done",
    updated: new Date().toISOString(),
    ...(failure ? { error: (failure.error as Error).message ?? String(failure.error) } : {}),
  };
  await writeLiveStatus(st.runDir!, st.live);
  if (failure) throw failureError(failure.error, failure.stage);
  if (st.opts.report) record.report = await publishReport(record, st.ctx.store, st.opts.report);
  return record;
}
