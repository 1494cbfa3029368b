/**
 * The training path: how a GAN's steps compute, as one object chosen when the GAN is built
 * (`gan.path`, {@link TrainingPath}). The loop and the stages call only this seam. An
 * implementation may keep the weights, the optimizer state and the weight average on a
 * device and answer asynchronously: images it makes stay with it as opaque {@link Batch}es,
 * figures come back as promises, and the loop issues an iteration's work before it awaits
 * the iteration's figures, once.
 *
 * The implementations here run on the host: `autodiff` (tfjs ops and their recorded
 * gradients; every backend and setting) and `direct` (hand-written passes over BLAS and the
 * SIMD Adam's memory; fast-cpu and the settings `directSupported` covers, with autodiff's
 * bits for the lecture's). What every implementation shares lives here too: the police's
 * inputs and labels with their random draws, and the NaN check.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Rng } from "../../pipeline/rng.ts";
 * import { policeInputs } from "./path.ts";
 * const tricks = { realLabel: 0.9, labelNoise: 0, instanceNoise: 0 };
 * const { x, y } = policeInputs(new Rng(1), new Float32Array(4), new Float32Array(2), 2, tricks);
 * assert.equal(x.length, 6);
 * assert.deepEqual(Array.from(y), [Math.fround(0.9), Math.fround(0.9), 0]);
 * ```
 */
import { StageError } from "../../pipeline/errors.ts";
import type { Rng } from "../../pipeline/rng.ts";
import type { CounterfeiterLoss } from "../schema.ts";
import type { Adam } from "./adam.ts";
import type { WeightAverage } from "./ema.ts";
import type { LossFn } from "./losses.ts";
import type { Net } from "./nets.ts";
import type { Streams } from "./streams.ts";

/** The implementations of {@link TrainingPath}. */
export type PathKind = "autodiff" | "direct" | "webgpu";

/** Rows a path holds (images or noise); only the path that made a batch reads it. */
export interface Batch {
  readonly rows: number;
  /** Numbers per row. */
  readonly dim: number;
}

/** One `fit` epoch's outcome: the loss as Keras reports it (mean over rows), the steps. */
export interface FitResult {
  loss: number;
  steps: number;
}

/** The loop's tricks on the police's inputs and labels (the lecture: {@link NO_TRICKS}). */
export interface PoliceTricks {
  /** Target for real rows (below 1: one-sided label smoothing). */
  realLabel: number;
  /** Probability that a row's label is flipped (real to 0, fake to realLabel). */
  labelNoise: number;
  /** Std-dev of Gaussian noise added to every input image. */
  instanceNoise: number;
}

/** The lecture's police inputs: labels 1 and 0, no flips, no noise (the warm-up's). */
export const NO_TRICKS: PoliceTricks = { realLabel: 1, labelNoise: 0, instanceNoise: 0 };

/** One police fit epoch's settings. */
export interface PoliceFit {
  /** Minibatch size (Keras's default 32). */
  batchSize: number;
  tricks: PoliceTricks;
  /** The factor on the police's configured learning rate for these steps. */
  rateFactor: number;
}

/** One counterfeiter fit epoch's settings. */
export interface CounterfeiterFit {
  /** Minibatch size (Keras's default 32). */
  batchSize: number;
  /** Run the police with dropout on (the lecture: off, inference mode). */
  policeDropout: boolean;
  /** Std-dev of the noise added to the fakes the police sees. */
  instanceNoise: number;
  /** The factor on the counterfeiter's configured learning rate for these steps. */
  rateFactor: number;
}

/** What a path trains: the nets, their optimizers, the losses, the random streams. */
export interface GanCore {
  readonly g: Net;
  readonly d: Net;
  readonly optG: Adam;
  readonly optD: Adam;
  /** The counterfeiter's noise length. */
  readonly noiseDim: number;
  readonly loss: LossFn;
  /** The counterfeiter's loss (bce is `loss` with target 1). */
  readonly counterfeiterLoss: CounterfeiterLoss;
  readonly streams: Streams;
  /** The moving average of the counterfeiter's weights, if the run keeps one. */
  readonly average: WeightAverage | null;
}

/**
 * How a GAN's steps compute. The host nets, optimizers and average of {@link GanCore} hold
 * the path's values after {@link TrainingPath.sync}; between syncs a device path may be
 * ahead of them.
 */
export interface TrainingPath {
  readonly kind: PathKind;
  /** Host rows (real images, noise) for this path: on a device path, an upload. */
  upload(data: Float32Array, dim: number): Batch;
  /** The counterfeiter's images from noise rows, in inference mode. */
  generate(noise: Batch): Batch;
  /** The police's mean probability over rows, in inference mode (no dropout). */
  meanD(x: Batch): Promise<number>;
  /** One police fit epoch on real (label 1) and fake (label 0) rows, dropout on. */
  fitPolice(real: Batch, fake: Batch, o: PoliceFit): Promise<FitResult>;
  /** One counterfeiter fit epoch on noise rows, target 1, through the police; only it learns. */
  fitCounterfeiter(noise: Batch, o: CounterfeiterFit): Promise<FitResult>;
  /** Folds the counterfeiter's weights after iteration `t` into the average, if there is one. */
  foldAverage(t: number): void;
  /** A batch's numbers on the host. */
  download(x: Batch): Promise<Float32Array>;
  /** Brings the path's weights, optimizer state and average into the host objects. */
  sync(): Promise<void>;
  /** Frees what the path holds on a device (the host objects stay usable). */
  dispose(): void;
}

/** Rows in host memory: the batches of the host paths. */
export class HostBatch implements Batch {
  constructor(readonly data: Float32Array, readonly dim: number) {}
  get rows(): number {
    return this.data.length / this.dim;
  }
}

/** The numbers of a host path's batch (a batch of another path is a programming error). */
export function hostData(b: Batch): Float32Array {
  if (!(b instanceof HostBatch)) throw new Error("this batch belongs to another training path");
  return b.data;
}

/**
 * What the host paths share: their batches are plain arrays and their state is the host's; a
 * fit's inputs, random draws and NaN check are the same for each, which gives only its epoch.
 */
export abstract class HostPath implements TrainingPath {
  abstract readonly kind: PathKind;
  constructor(readonly gan: GanCore) {}
  abstract generate(noise: Batch): Batch;
  abstract meanD(x: Batch): Promise<number>;
  /** One police epoch over rows `x` (`dim` numbers each) with labels `y`; the epoch's loss. */
  protected abstract policeEpoch(
    x: Float32Array,
    y: Float32Array,
    dim: number,
    o: Omit<PoliceFit, "tricks">,
  ): FitResult;
  /** One counterfeiter epoch over noise rows `z`; the epoch's loss. */
  protected abstract counterfeiterEpoch(z: Float32Array, o: CounterfeiterFit): FitResult;

  fitPolice(real: Batch, fake: Batch, { tricks, ...o }: PoliceFit): Promise<FitResult> {
    return answer(() => {
      const { augment } = this.gan.streams, dim = real.dim;
      const { x, y } = policeInputs(augment, hostData(real), hostData(fake), dim, tricks);
      const res = this.policeEpoch(x, y, dim, o);
      checkFinite(this.gan.optD, res.loss, "police");
      return res;
    });
  }

  fitCounterfeiter(noise: Batch, o: CounterfeiterFit): Promise<FitResult> {
    return answer(() => {
      const res = this.counterfeiterEpoch(hostData(noise), o);
      checkFinite(this.gan.optG, res.loss, "counterfeiter");
      return res;
    });
  }

  upload(data: Float32Array, dim: number): Batch {
    return new HostBatch(data, dim);
  }
  download(x: Batch): Promise<Float32Array> {
    return Promise.resolve(hostData(x));
  }
  foldAverage(t: number): void {
    this.gan.average?.update(this.gan.g, t);
  }
  sync(): Promise<void> {
    return Promise.resolve();
  }
  dispose(): void {}
}

/** Host work as a path's answer: its value, or what it threw as a rejection. */
export function answer<T>(work: () => T): Promise<T> {
  try {
    return Promise.resolve(work());
  } catch (e) {
    return Promise.reject(e);
  }
}

/** Adds `std` times standard normals from `rng` to `x` in place. */
export function addNoise(x: Float32Array, std: number, rng: Rng): void {
  if (std <= 0) return;
  const e = rng.normals(x.length);
  for (let i = 0; i < x.length; i++) x[i] += std * e[i];
}

/**
 * The police's epoch rows: real then fake (`dim` numbers a row), their labels with the
 * tricks' flips, and the instance noise, drawn from `augment` in that order.
 */
export function policeInputs(
  augment: Rng,
  real: Float32Array,
  fake: Float32Array,
  dim: number,
  tricks: PoliceTricks,
): { x: Float32Array; y: Float32Array } {
  const x = new Float32Array(real.length + fake.length);
  x.set(real);
  x.set(fake, real.length);
  const y = policeLabels(augment, real.length / dim, fake.length / dim, tricks);
  addNoise(x, tricks.instanceNoise, augment);
  return { x, y };
}

/**
 * The labels of `nReal` real then `nFake` fake rows, with the tricks' flips drawn from
 * `augment` (before any instance noise: a device path that adds the noise itself draws it
 * next, as {@link policeInputs} does).
 */
export function policeLabels(
  augment: Rng,
  nReal: number,
  nFake: number,
  tricks: PoliceTricks,
): Float32Array<ArrayBuffer> {
  const y = new Float32Array(nReal + nFake).fill(tricks.realLabel, 0, nReal);
  if (tricks.labelNoise > 0) {
    for (let r = 0; r < y.length; r++) {
      if (augment.uniform() < tricks.labelNoise) y[r] = r < nReal ? 0 : tricks.realLabel;
    }
  }
  return y;
}

/** Stops training whose loss or weights stopped being finite. */
export function checkFinite(opt: Adam, loss: number, what: string): void {
  if (!Number.isFinite(loss) || !opt.finite) {
    throw new StageError(
      `${what} ${Number.isFinite(loss) ? "weights" : "loss"} became ${loss} (NaN or infinite); ` +
        `the learning rate (optimizer.learningRate) is the usual cause`,
    );
  }
}
