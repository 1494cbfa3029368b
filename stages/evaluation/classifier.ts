/**
 * The evaluator classifier's loss, predictions and accuracy (the evaluator stage trains it;
 * the evaluate stage scores images with it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { accuracy } from "./classifier.ts";
 * assert(accuracy(new Float32Array([0.9, 0.1, 0.2, 0.8]), new Uint8Array([0, 0]), 2) === 0.5);
 * ```
 */
import * as tf from "@tensorflow/tfjs-core";
import { forward, type Net } from "../training/nets.ts";

/** Mean softmax cross-entropy from logits against integer labels. */
export function softmaxCrossEntropy(logits: tf.Tensor2D, labels: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.neg(tf.mean(tf.sum(tf.mul(labels, tf.logSoftmax(logits)), 1))));
}

/** Class probabilities of rows, in batches (softmax of the logits). */
export function predictProbs(net: Net, x: Float32Array, dim: number, batch = 2000): Float32Array {
  const n = x.length / dim;
  const k = net.layers.at(-1)!.W.shape[1] as number;
  const out = new Float32Array(n * k);
  for (let s = 0; s < n; s += batch) {
    const e = Math.min(n, s + batch);
    const p = tf.tidy(() =>
      tf.softmax(forward(net, tf.tensor2d(x.subarray(s * dim, e * dim), [e - s, dim])))
    );
    out.set(p.dataSync() as Float32Array, s * k);
    p.dispose();
  }
  return out;
}

/** Accuracy of argmax predictions against labels. */
export function accuracy(probs: Float32Array, labels: Uint8Array, k: number): number {
  let right = 0;
  for (let i = 0; i < labels.length; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (probs[i * k + j] > probs[i * k + best]) best = j;
    if (best === labels[i]) right++;
  }
  return right / labels.length;
}
