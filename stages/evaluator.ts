/**
 * Stage `evaluator`: a small MNIST classifier (an MLP with ReLU hidden layers), trained on the
 * train split with Adam and softmax cross-entropy, every draw from the seed. Its penultimate
 * features drive the Frechet distance, its predictions the class histogram and classifier
 * score. Writes `classifier/` (tfjs layers format, softmax output) and `summary.json` with the
 * test accuracy.
 */
import * as tf from "@tensorflow/tfjs-core";
import { join } from "node:path";
import { readNpy, readNpyF32 } from "../pipeline/npy.ts";
import { Rng } from "../pipeline/rng.ts";
import type { Stage } from "../pipeline/stage.ts";
import { StageError } from "../pipeline/errors.ts";
import { Adam } from "./adam.ts";
import { fitEpoch, gatherRows } from "./gan.ts";
import { makeAdamEngine } from "./kernels.ts";
import { saveNet } from "./model_io.ts";
import { disposeNet, forward, initNet, type Net, variablesOf } from "./nets.ts";

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

/** The evaluator stage. */
export const evaluatorStage: Stage = {
  name: "evaluator",
  version: 1,
  needs: ["preprocess"],
  usesTensors: true,
  doc: "train the MNIST classifier behind the metrics",
  outputs: () => ["classifier/model.json", "classifier/weights.bin", "summary.json"],
  pick: (cfg) => ({ seed: cfg.seed, evaluator: cfg.evaluator }),
  async run({ cfg, inputs, outDir, progress }) {
    const x = await readNpyF32(join(inputs.preprocess, "train_x.npy"));
    const y = (await readNpy(join(inputs.preprocess, "train_y.npy"))).data as Uint8Array;
    const tx = await readNpyF32(join(inputs.preprocess, "test_x.npy"));
    const ty = (await readNpy(join(inputs.preprocess, "test_y.npy"))).data as Uint8Array;
    const [n, dim] = x.shape;
    const k = 10;
    const e = cfg.evaluator;
    const net = initNet(
      "classifier",
      [dim, ...e.hidden, k],
      ["relu"],
      "linear",
      0,
      new Rng(cfg.seed, 20),
    );
    const vars = variablesOf(net);
    const opt = new Adam(vars, {
      learningRate: e.learningRate,
      beta1: 0.9,
      beta2: 0.999,
      epsilon: 1e-7,
      form: "keras",
    }, makeAdamEngine(vars));
    const shuffle = new Rng(cfg.seed, 21);
    const onehot = new Float32Array(n * k);
    for (let i = 0; i < n; i++) onehot[i * k + y[i]] = 1;
    const steps = Math.ceil(n / e.batchSize);
    progress.start("evaluator", e.epochs * steps);
    const losses: number[] = [];
    try {
      for (let epoch = 0; epoch < e.epochs; epoch++) {
        let done = 0;
        const fit = fitEpoch(n, e.batchSize, shuffle, (rows) => {
          let loss = 0;
          tf.tidy(() => {
            const xb = gatherRows(x.data, dim, rows), yb = gatherRows(onehot, k, rows);
            const { value, grads } = tf.variableGrads(
              () => softmaxCrossEntropy(forward(net, xb), yb),
              vars,
            );
            loss = value.dataSync()[0];
            opt.apply(vars.map((v) => grads[v.name]));
          });
          done++;
          progress.update(epoch * steps + done, { epoch: epoch + 1, loss });
          return loss;
        });
        if (!Number.isFinite(fit.loss) || !opt.finite) {
          throw new StageError(
            `evaluator loss became ${fit.loss} in epoch ${epoch + 1}; lower evaluator.learningRate`,
          );
        }
        losses.push(fit.loss);
      }
      progress.done();
      const acc = accuracy(predictProbs(net, tx.data, dim), ty, k);
      const summary = { testAccuracy: acc, trainRows: n, testRows: ty.length, epochLosses: losses };
      progress.log(`  evaluator test accuracy ${(100 * acc).toFixed(2)}% on ${ty.length} images`);
      await saveNet(join(outDir, "classifier"), net);
      await Deno.writeTextFile(
        join(outDir, "summary.json"),
        JSON.stringify(summary, null, 2) + "\n",
      );
      return summary;
    } finally {
      disposeNet(net);
    }
  },
};
