/**
 * Stage `evaluator`: a small MNIST classifier, an MLP with ReLU hidden layers (`kind: mlp`) or a
 * LeNet-like conv net (`kind: conv`, evaluation/conv_net.ts), trained on the train split with
 * Adam and softmax cross-entropy, every draw from the seed. Its penultimate
 * features drive the Frechet distance, its predictions the class histogram and classifier
 * score. Writes `classifier/` (tfjs layers format, softmax output) and `summary.json` with the
 * test accuracy.
 */
import { type Npy, readNpy, readNpyF32 } from "./formats/npy.ts";
import type { Progress } from "../pipeline/progress.ts";
import { ConvNet } from "./evaluation/conv_net.ts";
import { trainConv } from "./evaluation/conv_train.ts";
import { saveConv } from "./evaluation/scorer.ts";
import { matmul } from "./evaluation/matmul.ts";
import { Rng } from "../pipeline/rng.ts";
import type { Stage } from "../pipeline/stage.ts";
import type { Config } from "./schema.ts";
import { StageError } from "../pipeline/errors.ts";
import { Adam } from "./training/adam.ts";
import { fitEpoch, gatherRows, trainStep } from "./training/fit.ts";
import { makeAdamEngine } from "./training/adam_engine.ts";
import { saveNet } from "./formats/model_io.ts";
import { disposeNet, forward, initNet, variablesOf } from "./training/nets.ts";
import { accuracy, predictProbs, softmaxCrossEntropy } from "./evaluation/classifier.ts";
import { STREAM } from "./training/streams.ts";
import { artifact } from "./vocabulary.ts";

/** The conv evaluator: trained, scored on the test split, saved; its summary. */
async function trainConvEvaluator(
  cfg: Config,
  data: { x: Npy<Float32Array>; y: Uint8Array; tx: Npy<Float32Array>; ty: Uint8Array },
  outDir: string,
  progress: Progress,
) {
  const [n, dim] = data.x.shape;
  const c = cfg.evaluator.conv;
  const side = Math.round(Math.sqrt(dim));
  const span = 2 * c.filters.length;
  if (side * side !== dim || side < (c.kernel + 1) * span) {
    throw new StageError(
      `the conv evaluator needs square images of at least ${
        (c.kernel + 1) * span
      } pixels a side for ${c.filters.length} conv layers of kernel ${c.kernel}; these are ${dim} pixels: set evaluator.kind to mlp`,
    );
  }
  const spec = { side, filters: c.filters, kernel: c.kernel, dense: c.dense, classes: 10 };
  const net = ConvNet.init(spec, new Rng(cfg.evaluator.seed, STREAM.evaluatorInit), matmul());
  const losses = trainConv(net, {
    x: data.x.data,
    labels: data.y,
    epochs: c.epochs,
    batchSize: c.batchSize,
    learningRate: cfg.evaluator.learningRate,
    shuffle: new Rng(cfg.evaluator.seed, STREAM.evaluatorShuffle),
    progress,
  });
  const acc = accuracy(net.probabilities(data.tx.data, data.ty.length), data.ty, 10);
  progress.log(
    `  conv evaluator test accuracy ${(100 * acc).toFixed(2)}% on ${data.ty.length} images`,
  );
  await saveConv(artifact(outDir, "classifier"), net);
  const summary = {
    kind: "conv",
    testAccuracy: acc,
    trainRows: n,
    testRows: data.ty.length,
    epochLosses: losses,
  };
  await Deno.writeTextFile(artifact(outDir, "summary"), JSON.stringify(summary, null, 2) + "\n");
  return summary;
}

/** The evaluator stage. */
export const evaluatorStage: Stage<Config> = {
  name: "evaluator",
  code: import.meta.url,
  needs: ["preprocess"],
  usesRuntime: true,
  doc: "train the MNIST classifier behind the metrics",
  outputs: (cfg) =>
    cfg.evaluator.kind === "conv"
      ? ["classifier/conv.json", "classifier/params.npy", "summary.json"]
      : ["classifier/model.json", "classifier/weights.bin", "summary.json"],
  // each kind keys only its own settings; the evaluator's own seed, not the run's
  pick: (cfg) => {
    const { kind, learningRate, conv, hidden, epochs, batchSize, seed } = cfg.evaluator;
    return {
      evaluator: kind === "conv"
        ? { kind, seed, learningRate, conv }
        : { kind, seed, learningRate, hidden, epochs, batchSize },
    };
  },
  async run({ cfg, inputs, outDir, progress }) {
    const x = await readNpyF32(artifact(inputs.preprocess, "trainX"));
    const y = (await readNpy(artifact(inputs.preprocess, "trainY"))).data as Uint8Array;
    const tx = await readNpyF32(artifact(inputs.preprocess, "testX"));
    const ty = (await readNpy(artifact(inputs.preprocess, "testY"))).data as Uint8Array;
    if (cfg.evaluator.kind === "conv") {
      return await trainConvEvaluator(cfg, { x, y, tx, ty }, outDir, progress);
    }
    const [n, dim] = x.shape;
    const k = 10;
    const e = cfg.evaluator;
    const net = initNet(
      { kind: "classifier", sizes: [dim, ...e.hidden, k], output: "linear" },
      new Rng(cfg.evaluator.seed, STREAM.evaluatorInit),
    );
    const vars = variablesOf(net);
    const opt = new Adam(vars, {
      learningRate: e.learningRate,
      beta1: 0.9,
      beta2: 0.999,
      epsilon: 1e-7,
      form: "keras",
    }, makeAdamEngine(vars));
    const shuffle = new Rng(cfg.evaluator.seed, STREAM.evaluatorShuffle);
    const onehot = new Float32Array(n * k);
    for (let i = 0; i < n; i++) onehot[i * k + y[i]] = 1;
    const steps = Math.ceil(n / e.batchSize);
    progress.start("evaluator", e.epochs * steps);
    const losses: number[] = [];
    try {
      for (let epoch = 0; epoch < e.epochs; epoch++) {
        let done = 0;
        const fit = fitEpoch(n, e.batchSize, shuffle, (rows) => {
          const loss = trainStep(opt, vars, 1, () => {
            const xb = gatherRows(x.data, dim, rows), yb = gatherRows(onehot, k, rows);
            return softmaxCrossEntropy(forward(net, xb), yb);
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
      await saveNet(artifact(outDir, "classifier"), net);
      await Deno.writeTextFile(
        artifact(outDir, "summary"),
        JSON.stringify(summary, null, 2) + "\n",
      );
      return summary;
    } finally {
      disposeNet(net);
    }
  },
};
