/**
 * Keras-style fitting pieces shared by every trained network: one `fit` epoch over shuffled
 * minibatches, row gathering, and one gradient step through tfjs's autodiff.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fitEpoch } from "./fit.ts";
 * import { Rng } from "../../pipeline/rng.ts";
 * const sizes: number[] = [];
 * const r = fitEpoch(70, 32, new Rng(1), (rows) => (sizes.push(rows.length), 1));
 * assert(r.steps === 3 && sizes.join() === "32,32,6");
 * ```
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Rng } from "../../pipeline/rng.ts";
import type { Adam } from "./adam.ts";

/** Copies the given rows of a row-major matrix into `out` (a new array unless given). */
export function copyRows(
  src: Float32Array,
  dim: number,
  rows: ArrayLike<number>,
  out: Float32Array = new Float32Array(rows.length * dim),
): Float32Array {
  for (let r = 0; r < rows.length; r++) {
    out.set(src.subarray(rows[r] * dim, rows[r] * dim + dim), r * dim);
  }
  return out;
}

/** Copies the given rows of a row-major matrix into a new tensor. */
export function gatherRows(src: Float32Array, dim: number, rows: ArrayLike<number>): tf.Tensor2D {
  return tf.tensor2d(copyRows(src, dim, rows), [rows.length, dim]);
}

/**
 * One Keras `fit` epoch over `n` rows: a shuffled order from `rng`, minibatches of
 * `batchSize` (last one partial), `step(rows)` per minibatch returning its mean loss.
 * Returns the epoch loss (mean over rows, as Keras reports it) and the step count.
 */
export function fitEpoch(
  n: number,
  batchSize: number,
  rng: Rng,
  step: (rows: Int32Array) => number,
): { loss: number; steps: number } {
  const order = rng.permutation(n);
  let total = 0, steps = 0;
  for (let start = 0; start < n; start += batchSize) {
    const rows = order.subarray(start, Math.min(n, start + batchSize));
    total += step(rows) * rows.length;
    steps++;
  }
  return { loss: total / n, steps };
}

/**
 * One gradient step: the gradients of `loss()` (built inside a tidy scope) with respect to
 * `vars`, applied by `opt` at `rateFactor` times its learning rate. Returns the loss value.
 */
export function trainStep(
  opt: Adam,
  vars: tf.Variable[],
  rateFactor: number,
  loss: () => tf.Scalar,
): number {
  let value = 0;
  tf.tidy(() => {
    const { value: v, grads } = tf.variableGrads(loss, vars);
    value = v.dataSync()[0];
    opt.apply(vars.map((x) => grads[x.name]), rateFactor);
  });
  return value;
}
