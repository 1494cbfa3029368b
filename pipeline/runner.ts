/**
 * The runner walks the stage graph in order, computes each stage's key from exactly what it
 * depends on, reuses cached entries, runs the rest, and writes the run record `run.json`.
 * It also explains, per stage, why it is cached or why it must run.
 *
 * @example
 * ```ts
 * import { runPipeline } from "./runner.ts";
 * // const record = await runPipeline({ cfg, stages, results: "results" });
 * ```
 */
import { join } from "node:path";
import type { EngineConfig } from "./schema.ts";
import { StageError, UsageError } from "./errors.ts";
import { canonicalJson, hashValue } from "./hash.ts";
import { Progress } from "./progress.ts";
import type { RuntimeFacts, Stage } from "./stage.ts";
import { type EntryMeta, type KeyInputs, Store, writeFileAtomic } from "./store.ts";

/** The plan for one stage: its key and whether/why it runs. */
export interface StagePlan {
  stage: string;
  key: string;
  cached: boolean;
  reason: string;
  inputs: KeyInputs;
  /** What is wrong with the entry under this key, if one exists and is damaged. */
  damaged?: string;
  /** A shorter cached entry this stage will continue, when it declares `continues`. */
  continueFrom?: { key: string; length: number };
}

/** One stage's line in run.json. */
export interface StageRecord {
  stage: string;
  key: string;
  status: "cached" | "ran" | "failed" | "skipped";
  reason: string;
  seconds: number;
  summary?: Record<string, unknown>;
  error?: string;
}

/** Options of a run. */
export interface RunOptions<C extends EngineConfig = EngineConfig> {
  cfg: C;
  stages: Stage<C>[];
  results: string;
  runtime: RuntimeFacts;
  /** Extra facts for run.json (backend choice and why, versions). */
  environment?: Record<string, unknown>;
  force?: string[];
  until?: string;
  progress?: Progress;
  /** Compare every cached file's SHA-256 with its seal, not only its size. */
  verify?: boolean;
}

/** The record written to run.json. */
export interface RunRecord {
  name: string;
  runDir: string;
  configHash: string;
  seed: number;
  config: EngineConfig;
  stages: StageRecord[];
  started: string;
  finished: string | null;
  seconds: number;
  status: "ok" | "failed";
  environment: Record<string, unknown>;
  /** The run folder's report.html, when the last stage made one. */
  report?: string;
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

function diffPaths(a: unknown, b: unknown, path: string, out: string[]): void {
  const isObj = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    const ao = a as Record<string, unknown>, bo = b as Record<string, unknown>;
    for (const k of new Set([...Object.keys(ao), ...Object.keys(bo)])) {
      diffPaths(ao[k], bo[k], path ? `${path}.${k}` : k, out);
    }
  } else if (canonicalJson(a ?? null) !== canonicalJson(b ?? null)) {
    out.push(path);
  }
}

function show(v: unknown): string {
  const s = JSON.stringify(v) ?? "(absent)";
  return s.length > 40 ? s.slice(0, 37) + "..." : s;
}

/** Says why a stage with these inputs has no entry, by comparing with the closest one. */
export function explainMiss(inputs: KeyInputs, previous: EntryMeta[]): string {
  if (previous.length === 0) return "never computed before";
  let best: { meta: EntryMeta; changes: string[] } | null = null;
  for (const meta of previous) {
    const changes: string[] = [];
    const cfgPaths: string[] = [];
    diffPaths(meta.inputs.config, inputs.config, "", cfgPaths);
    for (const p of cfgPaths) {
      const get = (o: unknown) =>
        p.split(".").reduce((n: unknown, k) => (n as Record<string, unknown>)?.[k], o);
      changes.push(
        `${p} changed (${show(get(meta.inputs.config))} -> ${show(get(inputs.config))})`,
      );
    }
    for (const up of Object.keys(inputs.upstream)) {
      if (meta.inputs.upstream[up] !== inputs.upstream[up]) changes.push(`upstream ${up} changed`);
    }
    if (meta.inputs.version !== inputs.version) {
      changes.push(`stage version changed (${meta.inputs.version} -> ${inputs.version})`);
    }
    const rt: string[] = [];
    diffPaths(meta.inputs.runtime, inputs.runtime, "", rt);
    for (const p of rt) {
      const was = (meta.inputs.runtime as Record<string, unknown> | null)?.[p];
      const now = (inputs.runtime as Record<string, unknown> | null)?.[p];
      changes.push(`${p} changed (${show(was)} -> ${show(now)})`);
    }
    if (
      canonicalJson(meta.inputs.fingerprint ?? null) !== canonicalJson(inputs.fingerprint ?? null)
    ) {
      changes.push("input file contents changed");
    }
    if (!best || changes.length < best.changes.length) best = { meta, changes };
  }
  const c = best!.changes;
  return c.length ? c.join("; ") : "no matching entry";
}

/**
 * The longest intact cached entry of a `continues` stage that equals `inputs` in everything
 * but its length, and is shorter; or null.
 */
async function continuable<C extends EngineConfig>(
  store: Store,
  stage: Stage<C>,
  inputs: KeyInputs,
  entries: EntryMeta[],
): Promise<{ key: string; length: number } | null> {
  const c = stage.continues!;
  const want = c.length(inputs.config);
  const same = (m: EntryMeta) =>
    m.inputs.version === inputs.version &&
    canonicalJson(m.inputs.upstream) === canonicalJson(inputs.upstream) &&
    canonicalJson(m.inputs.runtime ?? null) === canonicalJson(inputs.runtime ?? null) &&
    canonicalJson(m.inputs.fingerprint ?? null) === canonicalJson(inputs.fingerprint ?? null) &&
    canonicalJson(c.without(m.inputs.config)) === canonicalJson(c.without(inputs.config));
  let best: { key: string; length: number } | null = null;
  for (const m of entries) {
    let length: number;
    try {
      length = c.length(m.inputs.config);
    } catch {
      continue;
    }
    if (!same(m) || !(length < want) || (best && best.length >= length)) continue;
    if ((await store.check(stage.name, m.key)).state !== "ok") continue;
    best = { key: m.key, length };
  }
  return best;
}

/** Computes every stage's key and whether it is cached, without running anything. */
export async function planRun<C extends EngineConfig>(opts: RunOptions<C>): Promise<StagePlan[]> {
  const { cfg, runtime } = opts;
  const store = new Store(opts.results);
  const stages = selectStages(opts.stages, opts.force, opts.until);
  const force = new Set(opts.force ?? []);
  const keys: Record<string, string> = {};
  const plans: StagePlan[] = [];
  for (const s of stages) {
    const inputs: KeyInputs = {
      stage: s.name,
      version: s.version,
      config: s.pick(cfg),
      upstream: Object.fromEntries(s.needs.map((n) => [n, keys[n]])),
      runtime: s.usesTensors ? runtime : null,
      fingerprint: s.fingerprint ? await s.fingerprint(cfg) : null,
    };
    const key = hashValue(inputs);
    keys[s.name] = key;
    const forced = force.has(s.name) || force.has("all");
    const check = forced ? null : await store.check(s.name, key, { hash: opts.verify });
    const cached = check?.state === "ok";
    let reason = "cached";
    // the stage's other entries, read once: they explain a miss and may be continued
    const others = cached || forced ? [] : await store.entries(s.name);
    if (forced) reason = "forced (--force)";
    else if (check?.state === "damaged") {
      reason = `the cached entry is damaged (${check.problem}); it is set aside and rebuilt`;
    } else if (!cached) reason = explainMiss(inputs, others);
    const continueFrom = !cached && !forced && s.continues
      ? await continuable(store, s, inputs, others)
      : null;
    if (continueFrom) {
      reason = `extends ${s.name} ${continueFrom.length} -> ${
        s.continues!.length(inputs.config)
      } from cache entry ${continueFrom.key.slice(0, 12)}`;
    }
    plans.push({
      stage: s.name,
      key,
      cached,
      reason,
      inputs,
      damaged: check?.state === "damaged" ? check.problem : undefined,
      continueFrom: continueFrom ?? undefined,
    });
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

/** Runs the pipeline; returns the run record (also written to run.json). */
export async function runPipeline<C extends EngineConfig>(opts: RunOptions<C>): Promise<RunRecord> {
  const progress = opts.progress ?? new Progress();
  const store = new Store(opts.results);
  const plans = await planRun(opts);
  const stages = selectStages(opts.stages, opts.force, opts.until);
  const { dir: runDir, hash } = runDirOf(opts.results, opts.cfg);
  await Deno.mkdir(runDir, { recursive: true });
  await removeStaleTemps(runDir);
  const started = new Date();
  const record: RunRecord = {
    name: opts.cfg.name,
    runDir,
    configHash: hash,
    seed: opts.cfg.seed,
    config: opts.cfg,
    stages: [],
    started: started.toISOString(),
    finished: null,
    seconds: 0,
    status: "ok",
    environment: { ...opts.environment, runtime: opts.runtime },
  };
  // run.json is the latest run's record; each run also keeps its own under records/, so
  // two runs of one config at the same time both keep what they did
  const own = join(
    runDir,
    "records",
    `${started.toISOString().replace(/[:.]/g, "-")}-${Deno.pid}.json`,
  );
  const writeRecord = async () => {
    const text = JSON.stringify(record, null, 2) + "\n";
    await Deno.mkdir(join(runDir, "records"), { recursive: true });
    await writeFileAtomic(own, text);
    await writeFileAtomic(join(runDir, "run.json"), text);
  };
  let failure: unknown = null;
  let failedStage = "";
  const holds: (() => void)[] = [];
  for (let i = 0; i < stages.length; i++) {
    const stage = stages[i], plan = plans[i];
    const inputs = Object.fromEntries(
      stage.needs.map((n) => [n, store.dir(n, plan.inputs.upstream[n])]),
    );
    if (plan.cached) {
      holds.push(await store.hold(stage.name, plan.key)); // gc leaves entries in use alone
      progress.log(`[${stage.name}] cached (${plan.key.slice(0, 12)})`);
      const meta = await store.meta(stage.name, plan.key);
      record.stages.push({
        stage: stage.name,
        key: plan.key,
        status: "cached",
        reason: "cached",
        seconds: 0,
        summary: meta?.summary,
      });
      continue;
    }
    // Another process (a sweep's parallel point) may be computing the same entry: wait for it.
    const forced = (opts.force ?? []).some((f) => f === stage.name || f === "all");
    const release = await store.lock(stage.name, plan.key, {
      force: forced,
      onWait: () =>
        progress.log(`[${stage.name}] waiting for another process computing the same entry`),
    });
    if (!release) {
      progress.log(`[${stage.name}] cached (computed by another process)`);
      const meta = await store.meta(stage.name, plan.key);
      record.stages.push({
        stage: stage.name,
        key: plan.key,
        status: "cached",
        reason: "computed by another process",
        seconds: 0,
        summary: meta?.summary,
      });
      continue;
    }
    if (!forced) {
      // under the lock: set a damaged entry aside (kept for inspection) before rebuilding it
      const check = await store.check(stage.name, plan.key, { hash: opts.verify });
      if (check.state === "damaged") {
        const where = await store.quarantine(stage.name, plan.key, check.problem);
        progress.log(
          `[${stage.name}] damaged cache entry ${
            plan.key.slice(0, 12)
          }: ${check.problem}; moved to ${where}; rebuilding`,
        );
      }
    }
    progress.log(`[${stage.name}] running: ${plan.reason}`);
    const t0 = performance.now();
    const tmp = await store.begin(stage.name, plan.key);
    const workDir = store.workDir(stage.name, plan.key);
    try {
      const summary = await stage.run({
        cfg: opts.cfg,
        outDir: tmp,
        inputs,
        workDir,
        progress,
        runtime: opts.runtime,
        continueFrom: plan.continueFrom
          ? { ...plan.continueFrom, dir: store.dir(stage.name, plan.continueFrom.key) }
          : undefined,
      }) ?? undefined;
      progress.done();
      const seconds = (performance.now() - t0) / 1000;
      const meta: EntryMeta = {
        stage: stage.name,
        key: plan.key,
        inputs: plan.inputs,
        seconds,
        created: new Date().toISOString(),
        summary,
      };
      await checkOutputs(stage, opts.cfg, tmp);
      await store.commit(stage.name, plan.key, tmp, meta);
      await Deno.remove(workDir, { recursive: true }).catch(() => {});
      await release();
      progress.log(`[${stage.name}] done in ${seconds.toFixed(1)}s`);
      record.stages.push({
        stage: stage.name,
        key: plan.key,
        status: "ran",
        reason: plan.reason,
        seconds,
        summary,
      });
    } catch (e) {
      progress.done();
      await release();
      await store.abandon(tmp);
      const seconds = (performance.now() - t0) / 1000;
      const msg = e instanceof Error ? e.message : String(e);
      record.stages.push({
        stage: stage.name,
        key: plan.key,
        status: "failed",
        reason: plan.reason,
        seconds,
        error: msg,
      });
      for (const rest of plans.slice(i + 1)) {
        record.stages.push({
          stage: rest.stage,
          key: rest.key,
          status: "skipped",
          reason: `${stage.name} failed`,
          seconds: 0,
        });
      }
      record.status = "failed";
      failure = e;
      failedStage = stage.name;
      break;
    }
  }
  for (const release of holds) release();
  record.finished = new Date().toISOString();
  record.seconds = (Date.now() - started.getTime()) / 1000;
  try {
    await writeRecord();
  } catch (e) {
    // a stage's failure (a full disk, say) is the news; the record failing after it is not
    if (!failure) throw e;
    progress.log(`could not write the run record: ${(e as Error).message}`);
  }
  if (!failure) record.report = await publishReport(record, store);
  if (failure) {
    let msg = failure instanceof Error ? failure.message : String(failure);
    if (failure instanceof Deno.errors.NotFound || /os error 28|No space left/.test(msg)) {
      msg = `${msg.split("\n")[0]}; ${
        /os error 28|No space left/.test(msg)
          ? "the disk is full: free space (or use --results on another disk) and run again"
          : "a file it needs is gone: run again to rebuild what is missing"
      } (nothing half-written is kept; a long stage resumes from its last checkpoint)`;
    }
    const err = new StageError(`stage ${failedStage} failed: ${msg}`);
    if (failure instanceof Error && "exitCode" in failure) {
      // keep the original class (a DataError stays one) but name the stage
      failure.message = `stage ${failedStage}: ${msg}`;
      throw failure;
    }
    throw err;
  }
  return record;
}

function escapeHtml(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The run record as an HTML table (for the report). */
export function recordHtml(record: RunRecord): string {
  const rows = record.stages.map((s) =>
    `<tr><td>${escapeHtml(s.stage)}</td><td>${escapeHtml(s.status)}</td><td>${
      s.seconds.toFixed(1)
    }</td><td><code>${escapeHtml(s.key.slice(0, 12))}</code></td><td style="text-align:left">${
      escapeHtml(s.status === "cached" ? "" : s.reason)
    }</td></tr>`
  ).join("\n");
  const env = record.environment as Record<string, unknown> & {
    git?: { commit: string | null; dirty: boolean | null };
    runtime?: RuntimeFacts;
  };
  const git = env.git?.commit
    ? `${env.git.commit.slice(0, 10)}${env.git.dirty ? " (dirty)" : ""}`
    : "unknown";
  return `<table><tr><th>stage</th><th>status</th><th>seconds</th><th>key</th><th>why it ran</th></tr>
${rows}</table>
<p class="sub">Started ${escapeHtml(record.started)}, ${
    record.seconds.toFixed(1)
  } s in all. Backend ${escapeHtml(env.runtime?.backend)}, tfjs ${
    escapeHtml(env.runtime?.tfjs)
  }, Deno ${escapeHtml(env.deno)}, git ${escapeHtml(git)}. Config hash <code>${
    escapeHtml(record.configHash.slice(0, 12))
  }</code>; the full record is <code>run.json</code> beside this file.</p>`;
}

/**
 * Copies the last stage's `report.html`, if it made one, into the run folder with this run's
 * record filled in at `<!--RUN-RECORD-->`.
 */
async function publishReport(record: RunRecord, store: Store): Promise<string | undefined> {
  const last = record.stages.at(-1);
  if (!last) return undefined;
  let html: string;
  try {
    html = await Deno.readTextFile(join(store.dir(last.stage, last.key), "report.html"));
  } catch {
    return undefined;
  }
  const path = join(record.runDir, "report.html");
  await writeFileAtomic(path, html.replace("<!--RUN-RECORD-->", recordHtml(record)));
  return path;
}
