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
import { copyRows } from "./fit.ts";
import { fitCounterfeiter, fitPolice, type Gan, generate, meanD } from "./gan.ts";

/** Runs a step, naming the iteration in a NaN/infinity error (the last checkpoint stays). */
function atIteration<T>(it: number, step: () => T): T {
  try {
    return step();
  } catch (e) {
    if (e instanceof StageError) {
      throw new StageError(`iteration ${it}: ${e.message} (the last checkpoint is kept)`);
    }
    throw e;
  }
}

/** What the loop takes from the config (`adversarial` holds all of it). */
export interface LoopOptions {
  /** Real images and fakes per iteration. */
  batchSize: number;
  /** Minibatch size of each fit. */
  fitBatchSize: number;
  /** Dropout in the police while the counterfeiter trains through it. */
  policeDropoutInCounterfeiterStep: boolean;
  /** Police fits per iteration, each on fresh rows and fakes (default 1). */
  policeSteps?: number;
  /** The police's target for real rows (default 1). */
  realLabel?: number;
  /** Share of police labels flipped (default 0). */
  labelNoise?: number;
  /** Std-dev of the police's input noise (default 0). */
  instanceNoise?: number;
  /** Iteration where the input noise has decayed linearly to 0 (null: constant). */
  instanceNoiseUntil?: number | null;
  /** A loss above this means the training diverged: the run stops (null: no limit). */
  lossLimit?: number | null;
  /** Iterations over which both learning rates halve (null: constant). */
  learningRateHalfLife?: number | null;
}

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
export function instanceNoiseAt(a: LoopOptions, it: number): number {
  const s = a.instanceNoise ?? 0, until = a.instanceNoiseUntil ?? null;
  if (s === 0 || until === null) return s;
  return it >= until ? 0 : s * (1 - (it - 1) / until);
}

/**
 * The factor on the configured learning rates at iteration `it` (1-based): a function of the
 * iteration alone, so a resumed or extended run steps as one that never stopped.
 */
export function learningRateFactor(a: LoopOptions, it: number): number {
  const h = a.learningRateHalfLife ?? null;
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

/** Runs iterations `from+1 .. to` of the loop on `gan`, appending to `history`. */
export function adversarialIterations(
  gan: Gan,
  a: LoopOptions,
  { train, dim, from = 0, to, history, onIteration }: LoopRange,
): Promise<void> {
  const nTrain = train.length / dim;
  const nd = gan.noiseDim;
  return (async () => {
    const steps = a.policeSteps ?? 1;
    const rates = [gan.optD.opts.learningRate, gan.optG.opts.learningRate];
    for (let it = from + 1; it <= to; it++) {
      const t0 = performance.now();
      const f = learningRateFactor(a, it);
      gan.optD.opts.learningRate = rates[0] * f;
      gan.optG.opts.learningRate = rates[1] * f;
      const sigma = instanceNoiseAt(a, it);
      const tricks = {
        realLabel: a.realLabel ?? 1,
        labelNoise: a.labelNoise ?? 0,
        instanceNoise: sigma,
      };
      let noise!: Float32Array, real!: Float32Array, fakes!: Float32Array;
      let dRealBefore = 0, dFakeBefore = 0;
      let pol = { loss: 0, steps: 0 };
      for (let k = 0; k < steps; k++) {
        noise = gan.streams.data.normals(a.batchSize * nd);
        const rows = Int32Array.from({ length: a.batchSize }, () => gan.streams.data.int(nTrain));
        real = copyRows(train, dim, rows);
        fakes = generate(gan.g, noise, nd);
        if (k === 0) {
          dRealBefore = meanD(gan.d, real, dim);
          dFakeBefore = meanD(gan.d, fakes, dim);
        }
        pol = atIteration(
          it,
          () => fitPolice(gan, real, fakes, { dim, batchSize: a.fitBatchSize, tricks }),
        );
      }
      // after the police's last step, on the rows and fakes of that step
      const dRealAfterPolice = meanD(gan.d, real, dim);
      const dFakeAfterPolice = meanD(gan.d, fakes, dim);
      const cf = atIteration(
        it,
        () =>
          fitCounterfeiter(gan, noise, {
            batchSize: a.fitBatchSize,
            policeDropout: a.policeDropoutInCounterfeiterStep,
            instanceNoise: sigma,
          }),
      );
      const dFakeAfterCounterfeiter = meanD(gan.d, generate(gan.g, noise, nd), dim);
      const row: HistoryRow = {
        iteration: it,
        dRealBefore,
        dFakeBefore,
        dRealAfterPolice,
        dFakeAfterPolice,
        dFakeAfterCounterfeiter,
        policeLoss: pol.loss,
        counterfeiterLoss: cf.loss,
        seconds: (performance.now() - t0) / 1000,
      };
      checkDivergence(it, pol.loss, cf.loss, a.lossLimit);
      history.push(row);
      await onIteration?.(row);
    }
  })();
}
