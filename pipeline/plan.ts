/**
 * Planning: a stage's cache key from exactly what it depends on, and, when it has no entry,
 * why. The key is the SHA-256 of {@link KeyInputs}: the stage's name, the config it picks,
 * the code it runs (its import graph and locked packages), the content digests of its
 * upstream stages' outputs (not their keys: a stage rerun that writes the same bits leaves
 * everything downstream valid), the runtime facts of a tensor stage, and a fingerprint of
 * inputs outside the config.
 *
 * A stage downstream of one that must run has no key until that stage has run: the plan
 * says it waits, and the runner plans it again once its inputs exist.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeChanges } from "./plan.ts";
 * const code = { files: { "a.ts": "1" }, packages: {} };
 * const was = { stage: "s", config: { n: 1 }, code, upstream: {}, runtime: null, fingerprint: null };
 * const now = { ...was, config: { n: 2 }, code: { files: { "a.ts": "2" }, packages: {} } };
 * assert.deepEqual(describeChanges(was, now), ["n changed (1 -> 2)", "code changed: a.ts"]);
 * ```
 */
import { join } from "node:path";
import { type CodeDigest, codeDigest } from "./code_digest.ts";
import { canonicalJson, hashValue } from "./hash.ts";
import type { EngineConfig } from "./schema.ts";
import type { KeyInputs, Runtime, Stage } from "./stage.ts";
import { type EntryMeta, outputDigest, Store } from "./store.ts";

export type { KeyInputs };

/** The plan for one stage: its key and whether/why it runs. */
export interface StagePlan {
  stage: string;
  /** Null while an upstream stage that runs first has not produced its outputs. */
  key: string | null;
  /**
   * The key, or while it is unknown, a digest of the recipe (the upstream plans' ids in
   * place of their outputs): two plans with one id compute the same thing.
   */
  id: string;
  cached: boolean;
  reason: string;
  /** The key's inputs (with the upstream digests left empty while `key` is null). */
  inputs: KeyInputs;
  /** Upstream stage -> the key of the entry this stage reads. */
  upstreamKeys: Record<string, string>;
  /** The cached entry's meta, when `cached`. */
  entry?: EntryMeta;
  /** A shorter cached entry this stage will continue, when it declares `continues`. */
  continueFrom?: { key: string; length: number };
}

/** An upstream stage as a later stage sees it: its entry and its outputs' digest. */
export interface Resolved {
  key: string;
  digest: string;
  /** Whether it ran in this run (for "reran with the same outputs"). */
  ran: boolean;
}

/** What planning needs besides the stage. */
export interface PlanContext<C extends EngineConfig = EngineConfig> {
  cfg: C;
  store: Store;
  runtime: Runtime;
  forced: Set<string>;
  verify?: boolean;
  /** The inputs this config's previous run used per stage, when there was one. */
  previous: Map<string, KeyInputs> | null;
}

/** The code a stage runs: its own import graph, the runtime's for a tensor stage. */
export function stageCode<C extends EngineConfig>(
  s: Stage<C>,
  runtime: Runtime,
): Promise<CodeDigest> {
  const roots = [s.code, ...(s.usesRuntime ? runtime.modules ?? [] : [])];
  return codeDigest(roots, { packages: s.packages ?? [] });
}

/** The key's inputs of a stage whose upstream stages are resolved (or not yet: `null`). */
async function keyInputs<C extends EngineConfig>(
  s: Stage<C>,
  ctx: PlanContext<C>,
  upstream: Record<string, Resolved | null>,
): Promise<KeyInputs> {
  return {
    stage: s.name,
    config: s.pick(ctx.cfg),
    code: await stageCode(s, ctx.runtime),
    upstream: Object.fromEntries(
      s.needs.map((n) => [n, upstream[n]?.digest ?? ""]),
    ),
    runtime: s.usesRuntime ? ctx.runtime.facts : null,
    fingerprint: s.fingerprint ? await s.fingerprint(ctx.cfg) : null,
  };
}

/**
 * Plans one stage. `upstream` holds each needed stage as resolved (its entry exists) or, as
 * a string, the id of a plan that has yet to run.
 */
export async function planStage<C extends EngineConfig>(
  s: Stage<C>,
  ctx: PlanContext<C>,
  upstream: Record<string, Resolved | string>,
): Promise<StagePlan> {
  const pending = s.needs.filter((n) => typeof upstream[n] === "string");
  const resolved = Object.fromEntries(
    s.needs.map((n) => [n, typeof upstream[n] === "string" ? null : upstream[n] as Resolved]),
  );
  const inputs = await keyInputs(s, ctx, resolved);
  const upstreamKeys = Object.fromEntries(
    s.needs.filter((n) => resolved[n]).map((n) => [n, resolved[n]!.key]),
  );
  const forced = ctx.forced.has(s.name) || ctx.forced.has("all");
  if (pending.length) {
    const ids = Object.fromEntries(
      s.needs.map((n) => [n, typeof upstream[n] === "string" ? upstream[n] : resolved[n]!.digest]),
    );
    const id = "~" + hashValue({ ...inputs, upstream: ids });
    const changes = ctx.previous?.get(s.name)
      ? describeChanges(ctx.previous.get(s.name)!, inputs, { upstream: false })
      : [];
    const after = `after ${pending.join(", ")}`;
    const reason = forced
      ? `forced (--force), ${after}`
      : changes.length
      ? `${changes.join("; ")} (runs ${after})`
      : `waits for ${pending.join(", ")}: cached if its outputs come out the same`;
    return { stage: s.name, key: null, id, cached: false, reason, inputs, upstreamKeys };
  }
  const key = hashValue(inputs);
  const plan: StagePlan = {
    stage: s.name,
    key,
    id: key,
    cached: false,
    reason: "forced (--force)",
    inputs,
    upstreamKeys,
  };
  if (forced) return plan;
  const check = await ctx.store.check(s.name, key, { hash: ctx.verify });
  if (check.state === "ok") {
    const same = s.needs.filter((n) => resolved[n]!.ran);
    plan.cached = true;
    plan.entry = check.meta;
    plan.reason = same.length
      ? `upstream ${same.join(", ")} reran with the same outputs: cached`
      : "cached";
    return plan;
  }
  const previous = ctx.previous?.get(s.name) ?? null;
  // the stage's other entries: a miss without a previous run is told against the closest one,
  // and a stage that continues may extend one
  const others = s.continues || !previous ? await ctx.store.entries(s.name) : [];
  plan.reason = check.state === "damaged"
    ? `the cached entry is damaged (${check.problem}); it is set aside and rebuilt`
    : explainMiss(inputs, previous, others);
  const continueFrom = s.continues ? await continuable(ctx.store, s, inputs, others) : null;
  if (continueFrom) {
    plan.continueFrom = continueFrom;
    plan.reason = `extends ${s.name} ${continueFrom.length} -> ${
      s.continues!.length(inputs.config)
    } from cache entry ${continueFrom.key.slice(0, 12)}`;
  }
  return plan;
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

function changedKeys(a: Record<string, string>, b: Record<string, string>): string[] {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => a[k] !== b[k]).sort();
}

/** What differs between two stages' key inputs, in words (config paths, code files, ...). */
export function describeChanges(
  was: KeyInputs,
  now: KeyInputs,
  { upstream = true } = {},
): string[] {
  const out: string[] = [];
  const paths: string[] = [];
  diffPaths(was.config, now.config, "", paths);
  const get = (o: unknown, p: string) =>
    p.split(".").reduce((n: unknown, k) => (n as Record<string, unknown>)?.[k], o);
  for (const p of paths) {
    out.push(
      `${p || "config"} changed (${show(get(was.config, p))} -> ${show(get(now.config, p))})`,
    );
  }
  if (!was.code) out.push("code changed (the entry predates code in cache keys)");
  else {
    const files = changedKeys(was.code.files, now.code.files);
    if (files.length) out.push(`code changed: ${files.join(", ")}`);
    const pkgs = changedKeys(was.code.packages, now.code.packages);
    if (pkgs.length) out.push(`packages changed: ${pkgs.join(", ")}`);
  }
  if (upstream) {
    for (const n of Object.keys(now.upstream)) {
      if (was.upstream?.[n] !== now.upstream[n]) out.push(`upstream ${n} produced new outputs`);
    }
  }
  const rt: string[] = [];
  diffPaths(was.runtime, now.runtime, "", rt);
  for (const p of rt) {
    out.push(
      `${p || "runtime"} changed (${show(get(was.runtime, p))} -> ${show(get(now.runtime, p))})`,
    );
  }
  if (canonicalJson(was.fingerprint ?? null) !== canonicalJson(now.fingerprint ?? null)) {
    out.push("input file contents changed");
  }
  return out;
}

/**
 * Says why a stage with these inputs has no entry: against the entry this config's previous
 * run used, or else (said so) against the closest entry of the stage.
 */
export function explainMiss(
  inputs: KeyInputs,
  previous: KeyInputs | null,
  entries: EntryMeta[],
): string {
  if (previous) {
    const c = describeChanges(previous, inputs);
    return c.length ? c.join("; ") : "no entry (the previous run's was removed)";
  }
  let best: string[] | null = null;
  for (const meta of entries) {
    const c = describeChanges(meta.inputs, inputs);
    if (!best || c.length < best.length) best = c;
  }
  if (!best) return "never computed before";
  return `no previous run of this config; against the closest entry: ${
    best.length ? best.join("; ") : "no matching entry"
  }`;
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
  const without = (k: KeyInputs) => canonicalJson({ ...k, config: c.without(k.config) });
  const mine = without(inputs);
  let best: { key: string; length: number } | null = null;
  for (const m of entries) {
    let length: number;
    try {
      length = c.length(m.inputs.config);
      if (without(m.inputs) !== mine) continue;
    } catch {
      continue;
    }
    if (!(length < want) || (best && best.length >= length)) continue;
    if ((await store.check(stage.name, m.key)).state !== "ok") continue;
    best = { key: m.key, length };
  }
  return best;
}

/** The digest of a cached entry's outputs, as downstream keys name it. */
export function resolvedOf<C extends EngineConfig>(
  s: Stage<C>,
  meta: EntryMeta,
  ran: boolean,
): Resolved {
  return { key: meta.key, digest: outputDigest(meta.seal!, s.volatile ?? []), ran };
}

/**
 * The key inputs each stage used in the latest earlier run of a config of this name (its
 * run record, read from every run folder), or null when there is none.
 */
export async function previousRun(
  results: string,
  name: string,
  store: Store,
): Promise<Map<string, KeyInputs> | null> {
  let latest:
    | { started: string; stages: { stage: string; key: string; inputs?: KeyInputs }[] }
    | null = null;
  try {
    for await (const e of Deno.readDir(join(results, "runs"))) {
      // run folders are <name>-<12 hex>: read only this config's (a sweep has many runs)
      const own = e.name.length === name.length + 13 && e.name.startsWith(`${name}-`);
      if (!e.isDirectory || !own) continue;
      try {
        const rec = JSON.parse(await Deno.readTextFile(join(results, "runs", e.name, "run.json")));
        if (rec.config?.name !== name) continue;
        if (!latest || String(rec.started) > latest.started) latest = rec;
      } catch { /* no record, or a damaged one: not a previous run */ }
    }
  } catch { /* no runs yet */ }
  if (!latest) return null;
  const out = new Map<string, KeyInputs>();
  for (const s of latest.stages ?? []) {
    if (!s.key) continue;
    const inputs = s.inputs ?? (await store.meta(s.stage, s.key))?.inputs;
    if (inputs) out.set(s.stage, inputs);
  }
  return out;
}
