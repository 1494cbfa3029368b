/**
 * Where a run's trained networks are, by the run folder alone: the adversarial stage's cache
 * entry named in run.json, its final nets or a checkpoint's. `sample` and `export` read them
 * here, so no user needs the cache's layout.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { entryOfRun } from "./run_nets.ts";
 * assert.equal(entryOfRun("results/runs/quick-0123456789ab", "abc"), "results/cache/adversarial/abc");
 * ```
 */
import { dirname, join, relative } from "node:path";
import { type BackendName, selectBackend } from "../backends/mod.ts";
import type { Config } from "../schema.ts";
import { StageError, UsageError } from "../../pipeline/errors.ts";
import { sealedProblem } from "../../pipeline/store.ts";
import type { RunRecord } from "../../pipeline/run_record.ts";
import { artifact, iterName } from "../vocabulary.ts";

/** The adversarial cache entry of a run folder under `<results>/runs/`. */
export function entryOfRun(runDir: string, key: string): string {
  return join(dirname(dirname(runDir)), "cache", "adversarial", key);
}

/** The checkpoint iterations an adversarial entry holds, ascending. */
async function checkpointsOf(entry: string): Promise<number[]> {
  const have: number[] = [];
  try {
    for await (const e of Deno.readDir(artifact(entry, "checkpoints"))) {
      if (/^iter_\d+$/.test(e.name)) have.push(Number(e.name.slice(5)));
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return have.sort((a, b) => a - b);
}

/**
 * The folder of a run's counterfeiter or police: the final one, or a checkpoint's. A usage
 * error (carrying `usage`) when the run has none there.
 */
export async function netDirOfRun(
  runDir: string,
  net: "counterfeiter" | "police",
  checkpoint: number | null,
  usage: string,
): Promise<string> {
  let record: RunRecord;
  try {
    record = JSON.parse(await Deno.readTextFile(join(runDir, "run.json")));
  } catch {
    throw new UsageError(
      `${runDir}: the run has no record yet (still running, or interrupted before it wrote one); run its config to finish it`,
      usage,
    );
  }
  const adv = record.stages.find((s) => s.stage === "adversarial" && s.key);
  if (!adv || (adv.status !== "ran" && adv.status !== "cached")) {
    throw new UsageError(
      `${runDir}: the run has no trained networks (no adversarial result)`,
      usage,
    );
  }
  const entry = entryOfRun(runDir, adv.key);
  const dir = checkpoint === null
    ? join(entry, net)
    : artifact(entry, "checkpoints", iterName(checkpoint), net);
  try {
    await Deno.stat(join(dir, "model.json"));
  } catch {
    if (checkpoint === null) {
      throw new UsageError(
        `${runDir}: its networks are no longer in the cache (removed by gc?); run its config again to rebuild them`,
        usage,
      );
    }
    throw new UsageError(
      `--checkpoint ${checkpoint}: the run has no checkpoint there; it has ${
        (await checkpointsOf(entry)).join(", ") || "none"
      }`,
      usage,
    );
  }
  // a model is read only once its bits match the entry's seal
  const problem = await sealedProblem(entry, relative(entry, dir));
  if (problem) {
    throw new StageError(
      `${runDir}: its adversarial cache entry ${
        adv.key.slice(0, 12)
      } is damaged (${problem}); rebuild it with: deno task run <its config> --verify`,
    );
  }
  return dir;
}

/** An integer option >= `min`, or a usage error naming the option. */
export function intOption(flag: string, text: string, min: number, usage: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) {
    throw new UsageError(`${flag} ${text}: expected an integer >= ${min}`, usage);
  }
  return n;
}

/**
 * Selects the tensor engine a run's config named, so its nets load as they were trained. A
 * webgpu run's nets run here on its host engine, fast-cpu: sampling needs no GPU.
 */
export async function selectRunBackend(config: Record<string, unknown>): Promise<void> {
  const cfg = config as unknown as Partial<Config>;
  const named = (cfg.backend ?? "auto") as BackendName;
  await selectBackend(named === "webgpu" ? "fast-cpu" : named, {
    flushDenormals: cfg.flushDenormals ?? true,
  });
}
