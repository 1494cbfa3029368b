/**
 * The lecture's adversarial loop, readable top to bottom: each iteration draws fresh noise,
 * makes fakes, draws real rows with replacement, fits the police one epoch on real(1) +
 * fake(0) with dropout on, then fits the counterfeiter one epoch on the same noise with
 * target 1 through the police in inference mode, and records D before and after each step.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkDivergence } from "./loop.ts";
 * assert.doesNotThrow(() => checkDivergence(3, 0.7, 12, 1000));
 * assert.throws(() => checkDivergence(3, 2e18, 12, 1000), /iteration 3: the police's loss reached 2.00e\+18/);
 * ```
 */
import { StageError } from "../../pipeline/errors.ts";
import type { HistoryRow } from "../vocabulary.ts";
import type { Config } from "../schema.ts";
import { copyRows } from "./fit.ts";
import type { Gan } from "./gan.ts";
import type { Batch, FitResult, TrainingPath } from "./path.ts";

/** Awaits an iteration's figures, naming the iteration in a NaN/infinity error. */
async function atIteration<T>(it: number, figures: Promise<T>): Promise<T> {
  try {
    return await figures;
  } catch (e) {
    if (e instanceof StageError) {
      throw new StageError(`iteration ${it}: ${e.message} (the last checkpoint is kept)`);
    }
    throw e;
  }
}

/** What the loop takes from the config: the validated `adversarial` section, defaults filled. */
export type LoopOptions = Pick<
  Config["adversarial"],
  | "batchSize"
  | "fitBatchSize"
  | "policeDropoutInCounterfeiterStep"
  | "policeSteps"
  | "realLabel"
  | "labelNoise"
  | "instanceNoise"
  | "instanceNoiseUntil"
  | "lossLimit"
  | "learningRateHalfLife"
  | "measureRows"
>;

/**
 * Stops a diverged run: a loss past `limit` (far beyond what a saturated police gives, which
 * is tens) means the weights have blown up; going on would seal a meaningless result.
 */
export function checkDivergence(
  it: number,
  policeLoss: number,
  counterfeiterLoss: number,
  limit: number | null | undefined,
): void {
  if (limit === null || limit === undefined) return;
  for (
    const [who, loss] of [["police", policeLoss], ["counterfeiter", counterfeiterLoss]] as const
  ) {
    if (loss > limit) {
      throw new StageError(
        `iteration ${it}: the ${who}'s loss reached ${
          loss.toExponential(2)
        }, past adversarial.lossLimit (${limit}): the training diverged; lower optimizer.learningRate (or the ${who}'s own) and run again (the last checkpoint is kept; nothing was sealed)`,
      );
    }
  }
}

/** The instance noise level at iteration `it` (1-based). */
export function instanceNoiseAt(
  a: Pick<LoopOptions, "instanceNoise" | "instanceNoiseUntil">,
  it: number,
): number {
  const s = a.instanceNoise, until = a.instanceNoiseUntil;
  if (s === 0 || until === null) return s;
  return it >= until ? 0 : s * (1 - (it - 1) / until);
}

/**
 * The factor on the configured learning rates at iteration `it` (1-based): a function of the
 * iteration alone, so a resumed or extended run steps as one that never stopped.
 */
export function learningRateFactor(
  a: Pick<LoopOptions, "learningRateHalfLife">,
  it: number,
): number {
  const h = a.learningRateHalfLife;
  return h === null ? 1 : 0.5 ** ((it - 1) / h);
}

/** Which iterations to run, on what data, and where their rows go. */
export interface LoopRange {
  /** The training images, `dim` numbers a row, in the training pixel scale. */
  train: Float32Array;
  dim: number;
  /** The last iteration already done (0 from the start; a checkpoint's when resuming). */
  from?: number;
  /** The last iteration to run. */
  to: number;
  /** Each iteration's row is appended here. */
  history: HistoryRow[];
  /** Called after each iteration (progress, checkpoints). */
  onIteration?: (row: HistoryRow) => void | Promise<void>;
}

/**
 * The batches the D figures are measured on: the iteration's own, or (with `m` below the
 * batch) new batches of their first `m` rows, the fakes generated again from the first `m`
 * noise rows. Nothing is drawn from a random stream, so training is the same either way.
 */
function measureOn(
  path: TrainingPath,
  m: number,
  batchSize: number,
  whole: { real: Batch; fakes: Batch; noise: Batch },
  realRows: Float32Array,
  noiseRows: Float32Array,
): { real: Batch; fakes: Batch; noise: Batch } {
  if (m >= batchSize) return whole;
  const dim = realRows.length / batchSize, nd = noiseRows.length / batchSize;
  const noise = path.upload(noiseRows.slice(0, m * nd), nd);
  return { real: path.upload(realRows.slice(0, m * dim), dim), fakes: path.generate(noise), noise };
}

/**
 * Runs iterations `from+1 .. to` of the loop on `gan`, appending to `history`. Each
 * iteration's steps are issued on the GAN's path before its figures are awaited, so a device
 * path reads back once an iteration.
 */
export async function adversarialIterations(
  gan: Gan,
  a: LoopOptions,
  { train, dim, from = 0, to, history, onIteration }: LoopRange,
): Promise<void> {
  const { path, streams, noiseDim: nd } = gan;
  const nTrain = train.length / dim;
  for (let it = from + 1; it <= to; it++) {
    const t0 = performance.now();
    const rateFactor = learningRateFactor(a, it);
    const sigma = instanceNoiseAt(a, it);
    const tricks = { realLabel: a.realLabel, labelNoise: a.labelNoise, instanceNoise: sigma };
    // the police's steps, each on fresh noise, fakes and real rows drawn with replacement;
    // D is measured before its first step and after its last, on that step's rows
    const policeFits: Promise<FitResult>[] = [];
    let noise!: Batch, real!: Batch, fakes!: Batch;
    let before!: Promise<number>[];
    // the rows the D figures are measured on: the batch, or its first measureRows rows
    let measured!: { real: Batch; fakes: Batch; noise: Batch };
    const m = a.measureRows ?? a.batchSize;
    for (let k = 0; k < a.policeSteps; k++) {
      const noiseRows = streams.data.normals(a.batchSize * nd);
      noise = path.upload(noiseRows, nd);
      const rows = Int32Array.from({ length: a.batchSize }, () => streams.data.int(nTrain));
      const realRows = copyRows(train, dim, rows);
      real = path.upload(realRows, dim);
      fakes = path.generate(noise);
      if (k === 0 || k === a.policeSteps - 1) {
        measured = measureOn(path, m, a.batchSize, { real, fakes, noise }, realRows, noiseRows);
      }
      if (k === 0) before = [path.meanD(measured.real), path.meanD(measured.fakes)];
      policeFits.push(
        path.fitPolice(real, fakes, { batchSize: a.fitBatchSize, tricks, rateFactor }),
      );
    }
    const afterPolice = [path.meanD(measured.real), path.meanD(measured.fakes)];
    const counterfeiterFit = path.fitCounterfeiter(noise, {
      batchSize: a.fitBatchSize,
      policeDropout: a.policeDropoutInCounterfeiterStep,
      instanceNoise: sigma,
      rateFactor,
    });
    const afterCounterfeiter = path.meanD(path.generate(measured.noise));
    path.foldAverage(it);
    const [fits, cf, [dRealBefore, dFakeBefore, dRealAfterPolice, dFakeAfterPolice, dFakeAfter]] =
      await atIteration(
        it,
        Promise.all([
          Promise.all(policeFits),
          counterfeiterFit,
          Promise.all([...before, ...afterPolice, afterCounterfeiter]),
        ]),
      );
    const policeLoss = fits[fits.length - 1].loss;
    const row: HistoryRow = {
      iteration: it,
      dRealBefore,
      dFakeBefore,
      dRealAfterPolice,
      dFakeAfterPolice,
      dFakeAfterCounterfeiter: dFakeAfter,
      policeLoss,
      counterfeiterLoss: cf.loss,
      seconds: (performance.now() - t0) / 1000,
    };
    checkDivergence(it, policeLoss, cf.loss, a.lossLimit);
    history.push(row);
    await onIteration?.(row);
  }
}
