/**
 * Training the conv evaluator: Adam (Keras's form) on the mean softmax cross-entropy over
 * shuffled minibatches, every draw from the seed; the loss per epoch, and a stop with the fix
 * when it stops being finite.
 */
import type { Progress } from "../../pipeline/progress.ts";
import type { Rng } from "../../pipeline/rng.ts";
import { StageError } from "../../pipeline/errors.ts";
import { Adam, adamUpdateJs } from "../training/adam.ts";
import { copyRows, fitEpoch } from "../training/fit.ts";
import type { ConvNet } from "./conv_net.ts";

/** What a training run needs. */
export interface ConvTraining {
  x: Float32Array;
  labels: Uint8Array;
  epochs: number;
  batchSize: number;
  learningRate: number;
  shuffle: Rng;
  progress: Progress;
}

/** Trains `net` in place; returns the mean loss of each epoch. */
export function trainConv(net: ConvNet, t: ConvTraining): number[] {
  const dim = net.spec.side ** 2, n = t.labels.length;
  const opts = {
    learningRate: t.learningRate,
    beta1: 0.9,
    beta2: 0.999,
    epsilon: 1e-7,
    form: "keras" as const,
  };
  const m = net.layers.flatMap((l) => [new Float32Array(l.W.length), new Float32Array(l.b.length)]);
  const v = m.map((a) => new Float32Array(a.length));
  let step = 0;
  const steps = Math.ceil(n / t.batchSize);
  t.progress.start("evaluator (conv)", t.epochs * steps);
  const losses: number[] = [];
  for (let epoch = 0; epoch < t.epochs; epoch++) {
    let done = 0;
    const fit = fitEpoch(n, t.batchSize, t.shuffle, (rows) => {
      const xb = copyRows(t.x, dim, rows);
      const yb = Uint8Array.from(rows, (r) => t.labels[r]);
      const { loss, grads } = net.gradients(net.forward(xb, rows.length), yb);
      const c = Adam.consts(opts, ++step);
      let ok = true;
      net.layers.forEach((l, i) => {
        ok = adamUpdateJs(l.W, grads[i].W, m[2 * i], v[2 * i], c) && ok;
        ok = adamUpdateJs(l.b, grads[i].b, m[2 * i + 1], v[2 * i + 1], c) && ok;
      });
      if (!ok || !Number.isFinite(loss)) {
        throw new StageError(
          `conv evaluator loss became ${loss} in epoch ${epoch + 1}; lower evaluator.learningRate`,
        );
      }
      t.progress.update(epoch * steps + ++done, { epoch: epoch + 1, loss });
      return loss;
    });
    losses.push(fit.loss);
  }
  t.progress.done();
  return losses;
}
