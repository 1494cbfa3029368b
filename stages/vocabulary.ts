/**
 * The words the stages share: what a history row and a checkpoint are called and where they
 * live, the metrics rows, and the part of the config the training stages depend on. Stages
 * import these from here, never from each other.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { artifact, checkpointIterations, iterName } from "./vocabulary.ts";
 * assert(iterName(50) === "iter_000050");
 * assert(checkpointIterations(120, 50).join() === "50,100,120");
 * assert(artifact("e", "checkpoints", iterName(50)) === "e/checkpoints/iter_000050");
 * ```
 */
import { join } from "node:path";
import type { Config } from "./schema.ts";

/** Images in a sample grid (5 x 5): the report follows the same noise vectors at every checkpoint. */
export const GRID_IMAGES = 25;

/** Keras' LeakyReLU default slope, used by the `leakyRelu` activation. */
export const LEAKY_RELU_SLOPE = 0.3;

/** File and folder names one stage writes and another reads. */
export const ARTIFACT = {
  trainX: "train_x.npy",
  trainY: "train_y.npy",
  testX: "test_x.npy",
  testY: "test_y.npy",
  police: "police",
  counterfeiter: "counterfeiter",
  counterfeiterInit: "counterfeiter_init",
  warmupNoise: "warmup_noise.npy",
  history: "history.json",
  checkpoints: "checkpoints",
  classifier: "classifier",
  metrics: "metrics.json",
  grids: "grids",
  samples: "samples.npy",
  report: "report.html",
  rng: "rng.json",
  timing: "timing.json",
  counterfeiterTrained: "counterfeiter_trained",
  summary: "summary.json",
} as const;

/** An artifact's name, as {@link ARTIFACT} spells it. */
export type ArtifactName = keyof typeof ARTIFACT;

/**
 * The path of artifact `name` in `dir` (an entry, a run's artifacts link, a snapshot), with
 * `rest` below it: every reader and writer spells a path through here.
 */
export function artifact(dir: string, name: ArtifactName, ...rest: string[]): string {
  return join(dir, ARTIFACT[name], ...rest);
}

/** One row of the history. */
export interface HistoryRow {
  iteration: number;
  /** Mean D on this iteration's real rows and fakes, before the police update. */
  dRealBefore: number;
  dFakeBefore: number;
  /** After the police update. */
  dRealAfterPolice: number;
  dFakeAfterPolice: number;
  /** D on fakes from the same noise after the counterfeiter update. */
  dFakeAfterCounterfeiter: number;
  policeLoss: number;
  counterfeiterLoss: number;
  /** Wall-clock seconds; on disk in the entry's timing.json, not in history.json. */
  seconds: number;
}

/** Where the rows that must match bit for bit across runs live: all but `seconds`. */
export function historyNumbers(h: HistoryRow[]): number[][] {
  return h.map((r) => [
    r.iteration,
    r.dRealBefore,
    r.dFakeBefore,
    r.dRealAfterPolice,
    r.dFakeAfterPolice,
    r.dFakeAfterCounterfeiter,
    r.policeLoss,
    r.counterfeiterLoss,
  ]);
}

/** The iterations that get a checkpoint: every `every`-th, and the last. */
export function checkpointIterations(total: number, every: number): number[] {
  const out: number[] = [];
  for (let i = every; i < total; i += every) out.push(i);
  if (total > 0) out.push(total);
  return out;
}

/** The folder name of the checkpoint at iteration `i` (`checkpoints/iter_000050/`). */
export const iterName = (i: number) => `iter_${String(i).padStart(6, "0")}`;

/**
 * The Adam settings a fit of one net reads: the shared ones and that net's own overrides
 * (paths for {@link pickPaths}).
 */
export function adamPaths(net: "police" | "counterfeiter"): string[] {
  const shared = ["learningRate", "beta1", "beta2", "epsilon", "form"];
  return [...shared, net].map((k) => `optimizer.${k}`);
}

/**
 * The training settings as a stage that fits only `net` reads them: the other net's own
 * Adam overrides dropped (its optimizer is never stepped), and for the police the
 * counterfeiter's loss (never computed), so neither is part of that stage's key.
 */
export function fitOnly(
  cfg: { optimizer: Config["optimizer"]; loss: Config["loss"] },
  net: "police" | "counterfeiter",
): { optimizer: Config["optimizer"]; loss: Config["loss"] } {
  const o = cfg.optimizer;
  const shared = {
    learningRate: o.learningRate,
    beta1: o.beta1,
    beta2: o.beta2,
    epsilon: o.epsilon,
    form: o.form,
  };
  const unused = { learningRate: null, beta1: null, beta2: null };
  return {
    optimizer: net === "police"
      ? { ...shared, police: o.police, counterfeiter: unused }
      : { ...shared, police: unused, counterfeiter: o.counterfeiter },
    loss: net === "police" ? { form: cfg.loss.form, counterfeiter: "bce" } : cfg.loss,
  };
}

/** The metrics of one set of images against the real test images. */
export interface ImageMetrics {
  frechet: number;
  classHistogram: number[];
  classesCovered: number;
  klToUniform: number;
  classifierScore: number;
}

/** One checkpoint's row in metrics.json. */
export interface CheckpointMetrics extends ImageMetrics {
  iteration: number | "final";
  dReal: number;
  dFake: number;
  outOfRangeFraction: number;
}

/** The metrics a sweep can be ranked by (the figures of reporting/sweep_report.ts). */
export const RANK_METRICS = [
  "frechet",
  "classifierScore",
  "classesCovered",
  "klToUniform",
  "dReal",
  "dFake",
  "gap",
  "bestFrechet",
  "tailFrechet",
  "goalMarksMet",
  "goalMiss",
] as const;

/** The metric a sweep file that names none is ranked by. */
export const DEFAULT_RANK = "frechet";
