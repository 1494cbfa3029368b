/** The evaluator classifier: its loss, predictions and accuracy, and the stage on tiny data. */
import assert from "node:assert/strict";
import { ResumableState } from "../pipeline/resumable.ts";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { selectBackend } from "../stages/backends/mod.ts";
import { Progress } from "../pipeline/progress.ts";
import { accuracy, predictProbs, softmaxCrossEntropy } from "../stages/evaluation/classifier.ts";
import { evaluatorStage } from "../stages/evaluator.ts";
import { loadNet } from "../stages/formats/model_io.ts";
import { writeNpy } from "../stages/formats/npy.ts";
import { Rng } from "../pipeline/rng.ts";
import { cli, configOf, tinyConfig, writeConfig, writeIdxFiles } from "./helpers.ts";

await selectBackend("cpu");

Deno.test("softmax cross-entropy and accuracy against hand-computed values", () => {
  const logits = tf.tensor2d([[0, 0], [2, 0]]);
  const labels = tf.tensor2d([[1, 0], [0, 1]]);
  const hand = (Math.log(2) + (2 + Math.log(1 + Math.exp(-2)))) / 2;
  const got = softmaxCrossEntropy(logits, labels).dataSync()[0];
  assert.ok(Math.abs(got - hand) < 1e-6, `${got} vs ${hand}`);
  const probs = new Float32Array([0.7, 0.3, 0.4, 0.6, 0.9, 0.1]);
  assert.equal(accuracy(probs, new Uint8Array([0, 1, 1]), 2), 2 / 3);
});

Deno.test("the evaluator learns a separable toy task and its saved net predicts the same", async () => {
  // class k lights pixel k: trivially separable
  const rng = new Rng(4);
  const make = (n: number) => {
    const x = new Float32Array(n * 10), y = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      y[i] = rng.int(10);
      x[i * 10 + y[i]] = 1;
      for (let j = 0; j < 10; j++) x[i * 10 + j] += 0.05 * rng.uniform();
    }
    return { x, y };
  };
  const pre = await Deno.makeTempDir();
  const tr = make(400), te = make(100);
  await writeNpy(join(pre, "train_x.npy"), tr.x, [400, 10]);
  await writeNpy(join(pre, "train_y.npy"), tr.y, [400]);
  await writeNpy(join(pre, "test_x.npy"), te.x, [100, 10]);
  await writeNpy(join(pre, "test_y.npy"), te.y, [100]);
  const cfg = await configOf(
    await Deno.makeTempDir(),
    tinyConfig({ trainImages: "a", trainLabels: "b", testImages: "c", testLabels: "d" }, {
      evaluator: { kind: "mlp", hidden: [16], epochs: 20, batchSize: 32, learningRate: 0.01 },
    }),
  );
  const outDir = await Deno.makeTempDir();
  const summary = await evaluatorStage.run({
    cfg,
    inputs: { preprocess: pre },
    outDir,
    resume: new ResumableState(await Deno.makeTempDir()),
    progress: new Progress({ quiet: true }),
    runtime: { facts: { backend: "cpu", tfjs: "", denormals: "flush" } },
  }) as { testAccuracy: number; epochLosses: number[] };
  assert.ok(summary.testAccuracy > 0.9, `accuracy ${summary.testAccuracy}`);
  assert.ok(summary.epochLosses.at(-1)! < summary.epochLosses[0]);
  const { net } = await loadNet(join(outDir, "classifier"));
  const probs = predictProbs(net, te.x, 10);
  assert.equal(accuracy(probs, te.y, 10), summary.testAccuracy);
  for (let i = 0; i < 100; i++) {
    const s = probs.subarray(i * 10, i * 10 + 10).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(s - 1) < 1e-5);
  }
});

Deno.test("the conv evaluator trains, and evaluate scores with its features and its 9x Frechet mark", async () => {
  const dir = await Deno.makeTempDir();
  const files = await writeIdxFiles(dir, { side: 28, train: 150, test: 40 });
  const conv = { filters: [2, 3], kernel: 5, dense: 6, epochs: 1, batchSize: 32 };
  const cfg = await writeConfig(
    dir,
    "conv",
    tinyConfig(files, { evaluator: { kind: "conv", conv } }),
  );
  const r = await cli(["run", cfg, "--results", join(dir, "results")]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /conv evaluator test accuracy [\d.]+% on 40 images/);
  const runDir = join(r.stdout.trim().split("\n").at(-1)!, "..");
  const metrics = JSON.parse(
    await Deno.readTextFile(join(runDir, "artifacts", "evaluate", "metrics.json")),
  );
  assert.equal(metrics.reference.evaluator, "conv");
  assert.equal(metrics.reference.frechetFactor, 9);
  assert(Number.isFinite(metrics.final.frechet) && metrics.final.frechet >= 0);
  assert.match(await Deno.readTextFile(join(runDir, "report.html")), /\u2264 9 \u00d7 real floor/);
  // too small an image for two 5x5 conv layers: one line naming the fix
  const small = await writeIdxFiles(dir, { side: 6 });
  const bad = await writeConfig(dir, "small", tinyConfig(small, { evaluator: { kind: "conv" } }));
  const b = await cli(["run", bad, "--results", join(dir, "results2")]);
  assert.equal(b.code, 1);
  assert.match(b.stderr, /the conv evaluator needs square images .*set evaluator\.kind to mlp/);
});

Deno.test("runs of other seeds share one evaluator (its own seed): the ruler is the same", async () => {
  const dir = await Deno.makeTempDir();
  const files = await writeIdxFiles(dir);
  const cfg = await writeConfig(dir, "tiny", tinyConfig(files));
  const results = join(dir, "results");
  const a = await cli(["run", cfg, "--results", results]);
  assert.equal(a.code, 0, a.stderr);
  const b = await cli(["run", cfg, "--results", results, "--set", "seed=7"]);
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stderr, /\[train_police\] running/);
  assert.match(b.stderr, /\[evaluator\] cached/);
  const c = await cli(["run", cfg, "--results", results, "--set", "evaluator.seed=3"]);
  assert.match(c.stderr, /\[evaluator\] running: evaluator\.seed changed \(0 -> 3\)/);
});
