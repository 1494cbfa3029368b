/**
 * The losses a GAN trains with, as tfjs ops (the autodiff path records their gradients; the
 * direct path computes the same numbers by hand in `dense_direct.ts`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "@tensorflow/tfjs-backend-cpu";
 * import * as tf from "@tensorflow/tfjs-core";
 * import { bceFromLogits } from "./losses.ts";
 * const l = bceFromLogits(tf.tensor2d([[0]]), tf.tensor2d([[1]]));
 * assert(Math.abs(l.dataSync()[0] - Math.log(2)) < 1e-6);
 * ```
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Config } from "../schema.ts";

/** Keras' epsilon for clipping probabilities. */
export const CLIP_EPSILON = 1e-7;

/** The loss form a config names. */
export type LossForm = Config["loss"]["form"];

/** A mean loss over a minibatch from the police's logits and the labels. */
export type LossFn = (logits: tf.Tensor, labels: tf.Tensor) => tf.Scalar;

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
export function lossFn(form: LossForm): LossFn {
  return form === "logits" ? bceFromLogits : bceClipped;
}
