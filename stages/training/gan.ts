/**
 * The lecture's training, readable top to bottom: the loss, a Keras-style `fit` epoch
 * (shuffled minibatches, last one partial, every draw from our seed), the police step and
 * the counterfeiter step through a frozen police. The stages call these.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs-core";
 * import { bceFromLogits } from "./gan.ts";
 * const l = bceFromLogits(tf.tensor2d([[0]]), tf.tensor2d([[1]]));
 * assert(Math.abs(l.dataSync()[0] - Math.log(2)) < 1e-6);
 * ```
 */
import * as tf from "@tensorflow/tfjs-core";
// tfjs-core alone registers no gradients; tfjs-layers' bundle registers all of them.
import "@tensorflow/tfjs-layers";
import type { Config, CounterfeiterLoss } from "../schema.ts";
import { StageError } from "../../pipeline/errors.ts";
import type { Rng } from "../../pipeline/rng.ts";
import { FAST_CPU, fastCpuSgemm } from "../backends/fast_cpu.ts";
import { Adam } from "./adam.ts";
import { copyRows, fitEpoch, gatherRows, trainStep } from "./fit.ts";
import {
  bceLogitsAndGrad,
  counterfeiterLossAndGrad,
  DenseStack,
  directSupported,
  meanSigmoid,
} from "./dense_direct.ts";
import { makeAdamEngine } from "./adam_engine.ts";
import { forward, type Net, variablesOf } from "./nets.ts";

/** Keras' epsilon for clipping probabilities. */
export const CLIP_EPSILON = 1e-7;

/** Mean binary cross-entropy from logits: max(l,0) - l*y + log(1+exp(-|l|)). */
export function bceFromLogits(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  return tf.tidy(() =>
    tf.mean(
      tf.add(
        tf.sub(tf.relu(logits), tf.mul(logits, labels)),
        tf.log1p(tf.exp(tf.neg(tf.abs(logits)))),
      ),
    )
  );
}

/** Mean BCE on probabilities clipped to [eps, 1-eps]: zero gradient once the sigmoid saturates. */
export function bceClipped(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const p = tf.clipByValue(tf.sigmoid(logits), CLIP_EPSILON, 1 - CLIP_EPSILON);
    const one = tf.scalar(1);
    return tf.neg(
      tf.mean(
        tf.add(tf.mul(labels, tf.log(p)), tf.mul(tf.sub(one, labels), tf.log(tf.sub(one, p)))),
      ),
    );
  });
}

/** The counterfeiter's least-squares loss: mean (sigmoid(l) - 1)^2. */
export function leastSquaresLoss(logits: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.square(tf.sub(tf.sigmoid(logits), 1))));
}

/** The counterfeiter's hinge loss: mean max(0, 1 - l). */
export function hingeLoss(logits: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.relu(tf.sub(1, logits))));
}

/** The loss of a config. */
export function lossFn(form: LossForm): (l: tf.Tensor, y: tf.Tensor) => tf.Scalar {
  return form === "logits" ? bceFromLogits : bceClipped;
}

/** The random streams of a training run, each from the seed, so one use never shifts another. */
export interface Streams {
  shuffle: Rng;
  dropout: Rng;
  data: Rng;
  /** Label flips and instance noise (drawn from only when those knobs are on). */
  augment: Rng;
}

/** Everything a GAN step needs. */
export interface Gan {
  g: Net;
  d: Net;
  optG: Adam;
  optD: Adam;
  /** The counterfeiter's noise length. */
  noiseDim: number;
  loss: (l: tf.Tensor, y: tf.Tensor) => tf.Scalar;
  /** The counterfeiter's loss (bce is `loss` with target 1). */
  counterfeiterLoss: CounterfeiterLoss;
  streams: Streams;
}

/** The direct (autodiff-free) passes of nets whose parameters live in a SIMD optimizer. */
const direct = new WeakMap<Net, { stack: DenseStack; opt: Adam }>();

/**
 * Sets up the direct training path for a net when the backend and settings allow it: on
 * fast-cpu with BLAS-backed buffers and the SIMD optimizer, for the settings
 * {@link directSupported} covers. Elsewhere training goes through tfjs's autodiff.
 */
function enableDirect(net: Net, opt: Adam, lossForm: LossForm): void {
  const sgemm = tf.getBackend() === FAST_CPU ? fastCpuSgemm() : null;
  const buffers = opt.engine.buffers;
  // the police's and classifier's forward returns logits: their output activation is not applied
  const output = net.kind === "counterfeiter" ? net.outputActivation : "linear";
  if (!sgemm || !buffers || !directSupported(net.hiddenActivation, output, lossForm)) return;
  const params = net.layers.map((_, i) => ({
    W: buffers.params[2 * i],
    b: buffers.params[2 * i + 1],
  }));
  direct.set(net, { stack: new DenseStack(net, sgemm, params), opt });
}

/** The loss form a config names. */
export type LossForm = Config["loss"]["form"];

/** What training takes from the config: the optimizer's settings and the losses. */
export interface TrainingOptions {
  optimizer: Config["optimizer"];
  loss: { form: LossForm; counterfeiter?: CounterfeiterLoss };
}

/** The Adam settings of one net: the shared ones with the net's own overrides. */
export function adamFor(o: Config["optimizer"], net: "police" | "counterfeiter") {
  const own = o[net];
  return {
    learningRate: own?.learningRate ?? o.learningRate,
    beta1: own?.beta1 ?? o.beta1,
    beta2: own?.beta2 ?? o.beta2,
    epsilon: o.epsilon,
    form: o.form,
  };
}

/** Options of {@link makeGan}. */
export interface GanOptions {
  /** Use the direct training path where supported (default true; false forces tfjs autodiff). */
  direct?: boolean;
}

/** Creates optimizers for both nets (optionally restoring their state). */
export function makeGan(
  opts: TrainingOptions,
  g: Net,
  d: Net,
  streams: Streams,
  { direct: useDirect = true }: GanOptions = {},
): Gan {
  const gan: Gan = {
    g,
    d,
    optG: new Adam(
      variablesOf(g),
      adamFor(opts.optimizer, "counterfeiter"),
      makeAdamEngine(variablesOf(g)),
    ),
    optD: new Adam(
      variablesOf(d),
      adamFor(opts.optimizer, "police"),
      makeAdamEngine(variablesOf(d)),
    ),
    noiseDim: g.layers[0].W.shape[0],
    loss: lossFn(opts.loss.form),
    counterfeiterLoss: opts.loss.counterfeiter ?? "bce",
    streams,
  };
  direct.delete(g);
  direct.delete(d);
  if (useDirect) {
    enableDirect(g, gan.optG, opts.loss.form);
    enableDirect(d, gan.optD, opts.loss.form);
  }
  return gan;
}

function checkFinite(opt: Adam, loss: number, what: string): void {
  if (!Number.isFinite(loss) || !opt.finite) {
    throw new StageError(
      `${what} ${Number.isFinite(loss) ? "weights" : "loss"} became ${loss} (NaN or infinite); ` +
        `the learning rate (optimizer.learningRate) is the usual cause`,
    );
  }
}

/** Generates images from noise rows (counterfeiter in inference mode) as a flat array. */
export function generate(g: Net, noise: Float32Array, noiseDim: number): Float32Array {
  const fast = direct.get(g);
  if (fast) return fast.stack.infer(noise, noise.length / noiseDim).slice();
  // tidy must return the tensor, not its data: it walks a returned array element by element
  const out = tf.tidy(() => forward(g, tf.tensor2d(noise, [noise.length / noiseDim, noiseDim])));
  const data = (out.dataSync() as Float32Array).slice();
  out.dispose();
  return data;
}

/** Mean police probability over rows of images, in inference mode (no dropout). */
export function meanD(d: Net, x: Float32Array, dim: number): number {
  const fast = direct.get(d);
  if (fast) {
    const n = x.length / dim;
    return meanSigmoid(fast.stack.infer(x, n), n);
  }
  return tf.tidy(() =>
    tf.mean(tf.sigmoid(forward(d, tf.tensor2d(x, [x.length / dim, dim])))).dataSync()[0]
  );
}

/** The loop's tricks on the police's inputs and labels (all off: the lecture). */
export interface PoliceTricks {
  /** Target for real rows (below 1: one-sided label smoothing). */
  realLabel: number;
  /** Probability that a row's label is flipped (real to 0, fake to realLabel). */
  labelNoise: number;
  /** Std-dev of Gaussian noise added to every input image. */
  instanceNoise: number;
}

/** Adds `std` times standard normals from `rng` to `x` in place. */
function addNoise(x: Float32Array, std: number, rng: Rng): void {
  if (std <= 0) return;
  const e = rng.normals(x.length);
  for (let i = 0; i < x.length; i++) x[i] += std * e[i];
}

/** One police fit epoch on real (label 1) and fake (label 0) rows, dropout on. */
export function fitPolice(
  gan: Gan,
  real: Float32Array,
  fake: Float32Array,
  { dim, batchSize, tricks = { realLabel: 1, labelNoise: 0, instanceNoise: 0 } }: {
    /** Numbers per image. */
    dim: number;
    /** Minibatch size (Keras's default 32). */
    batchSize: number;
    tricks?: PoliceTricks;
  },
) {
  const nReal = real.length / dim, nFake = fake.length / dim;
  const x = new Float32Array(real.length + fake.length);
  x.set(real);
  x.set(fake, real.length);
  const y = new Float32Array(nReal + nFake).fill(tricks.realLabel, 0, nReal);
  if (tricks.labelNoise > 0) {
    const u = gan.streams.augment;
    for (let r = 0; r < y.length; r++) {
      if (u.uniform() < tricks.labelNoise) y[r] = r < nReal ? 0 : tricks.realLabel;
    }
  }
  addNoise(x, tricks.instanceNoise, gan.streams.augment);
  const fast = direct.get(gan.d);
  if (fast) {
    const grads = gan.optD.engine.buffers!.grads;
    const xb = new Float32Array(batchSize * dim), yb = new Float32Array(batchSize);
    const dl = new Float32Array(batchSize);
    const res = fitEpoch(nReal + nFake, batchSize, gan.streams.shuffle, (rows) => {
      const n = rows.length;
      copyRows(x, dim, rows, xb);
      for (let r = 0; r < n; r++) yb[r] = y[rows[r]];
      const logits = fast.stack.forward(xb, n, gan.streams.dropout);
      const loss = bceLogitsAndGrad(logits, yb, n, dl);
      fast.stack.backward(dl, n, grads, null);
      gan.optD.applyBuffered();
      return loss;
    });
    checkFinite(gan.optD, res.loss, "police");
    return res;
  }
  const vars = variablesOf(gan.d);
  const res = fitEpoch(
    nReal + nFake,
    batchSize,
    gan.streams.shuffle,
    (rows) =>
      trainStep(gan.optD, vars, () => {
        const xb = gatherRows(x, dim, rows);
        const yb = tf.tensor2d(Float32Array.from(rows, (r) => y[r]), [rows.length, 1]);
        return gan.loss(forward(gan.d, xb, gan.streams.dropout), yb);
      }),
  );
  checkFinite(gan.optD, res.loss, "police");
  return res;
}

/**
 * One counterfeiter fit epoch on noise rows with target 1, through the police, updating only
 * the counterfeiter. The police runs in inference mode unless `policeDropout` is set.
 */
export function fitCounterfeiter(
  gan: Gan,
  noise: Float32Array,
  { batchSize, policeDropout = false, instanceNoise = 0 }: {
    /** Minibatch size (Keras's default 32). */
    batchSize: number;
    /** Run the police with dropout on (the lecture: off, inference mode). */
    policeDropout?: boolean;
    /** Std-dev of the noise added to the fakes the police sees. */
    instanceNoise?: number;
  },
) {
  const nd = gan.noiseDim;
  const n = noise.length / nd;
  const fastG = direct.get(gan.g), fastD = direct.get(gan.d);
  // the counterfeiter's own dropout (0 in the lecture: then no masks are drawn)
  const gDropout = gan.g.dropout > 0 ? gan.streams.dropout : null;
  const form = gan.counterfeiterLoss;
  if (fastG && fastD) {
    const grads = gan.optG.engine.buffers!.grads;
    const dim = fastD.stack.net.layers[0].W.shape[0];
    const zb = new Float32Array(batchSize * nd), dl = new Float32Array(batchSize);
    const dFake = new Float32Array(batchSize * dim);
    const noisy = instanceNoise > 0 ? new Float32Array(batchSize * dim) : null;
    const res = fitEpoch(n, batchSize, gan.streams.shuffle, (rows) => {
      const b = rows.length;
      copyRows(noise, nd, rows, zb);
      let fake = fastG.stack.forward(zb, b, gDropout);
      if (noisy) {
        const v = noisy.subarray(0, b * dim);
        v.set(fake.subarray(0, b * dim));
        addNoise(v, instanceNoise, gan.streams.augment);
        fake = v;
      }
      const logits = fastD.stack.forward(fake, b, policeDropout ? gan.streams.dropout : null);
      const loss = form === "bce"
        ? bceLogitsAndGrad(logits, null, b, dl)
        : counterfeiterLossAndGrad(form, logits, b, dl);
      fastD.stack.backward(dl, b, null, dFake);
      fastG.stack.backward(dFake, b, grads, null);
      gan.optG.applyBuffered();
      return loss;
    });
    checkFinite(gan.optG, res.loss, "counterfeiter");
    return res;
  }
  const vars = variablesOf(gan.g);
  const res = fitEpoch(
    n,
    batchSize,
    gan.streams.shuffle,
    (rows) =>
      trainStep(gan.optG, vars, () => {
        const zb = gatherRows(noise, nd, rows);
        let fake = forward(gan.g, zb, gDropout);
        if (instanceNoise > 0) {
          const e = gan.streams.augment.normals(fake.size);
          fake = tf.add(fake, tf.mul(tf.tensor2d(e, fake.shape), instanceNoise));
        }
        const logits = forward(gan.d, fake, policeDropout ? gan.streams.dropout : null);
        if (form === "leastSquares") return leastSquaresLoss(logits);
        if (form === "hinge") return hingeLoss(logits);
        return gan.loss(logits, tf.ones([rows.length, 1]));
      }),
  );
  checkFinite(gan.optG, res.loss, "counterfeiter");
  return res;
}
