/** The direct (autodiff-free) training path against tfjs's autodiff on the same backend. */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { selectBackend } from "../stages/backends/mod.ts";
import type { Config } from "../stages/schema.ts";
import { Rng } from "../pipeline/rng.ts";
import { fitCounterfeiter, fitPolice, generate, makeGan, meanD } from "../stages/training/gan.ts";
import { bceLogitsAndGrad, directSupported } from "../stages/training/dense_direct.ts";
import { bceFromLogits } from "../stages/training/gan.ts";
import { initNets } from "../stages/training/nets.ts";
import { streamsFor } from "../stages/training/streams.ts";
import { configOf, loopRun, tinyConfig } from "./helpers.ts";

async function cfgWith(model: Record<string, unknown>, adv: Record<string, unknown> = {}) {
  const dir = await Deno.makeTempDir();
  return await configOf(
    dir,
    tinyConfig({ trainImages: "a", trainLabels: "b", testImages: "c", testLabels: "d" }, {
      model,
      adversarial: { iterations: 5, batchSize: 50, fitBatchSize: 16, ...adv },
    }),
  );
}

/** Runs `iterations` of the loop from a seeded init; returns history and final weights. */
const run = (cfg: Config, direct: boolean, iterations: number, dim: number) =>
  loopRun(cfg, direct, iterations, dim);

Deno.test("the direct path gives tfjs's bits: history and weights over 5 iterations", async () => {
  // 784-wide input, 3 hidden layers with dropout, partial last minibatch (50 = 3*16 + 2)
  const cfg = await cfgWith({
    noiseDim: 10,
    counterfeiter: { hidden: [32, 64] },
    police: { hidden: [64, 32, 16], dropout: 0.3 },
  });
  const a = await run(cfg, true, 5, 784);
  const b = await run(cfg, false, 5, 784);
  assert.deepEqual(a.history, b.history);
  assert.deepEqual(a.weights, b.weights);
  await selectBackend("cpu");
});

Deno.test("the direct path with dropout in the counterfeiter step matches too", async () => {
  const cfg = await cfgWith(
    { noiseDim: 4, counterfeiter: { hidden: [16] }, police: { hidden: [16, 8], dropout: 0.5 } },
    { policeDropoutInCounterfeiterStep: true },
  );
  const a = await run(cfg, true, 3, 20);
  const b = await run(cfg, false, 3, 20);
  assert.deepEqual(a.history, b.history);
  assert.deepEqual(a.weights, b.weights);
  await selectBackend("cpu");
});

Deno.test("the logits BCE and its gradient match tfjs's, saturated logits included", async () => {
  await selectBackend("fast-cpu");
  const l = new Float32Array([-80, -30, -2.5, -1e-3, 0, 1e-3, 0.7, 5, 30, 80, -0.2]);
  const y = new Float32Array([1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
  const n = l.length;
  const dl = new Float32Array(n);
  const loss = bceLogitsAndGrad(l, y, n, dl);
  const lt = tf.tensor2d(l, [n, 1]), yt = tf.tensor2d(y, [n, 1]);
  const g = tf.grad((x: tf.Tensor) => bceFromLogits(x, yt))(lt);
  assert.deepEqual(Array.from(dl), Array.from(g.dataSync()));
  assert.equal(loss, bceFromLogits(lt, yt).dataSync()[0]);
  await selectBackend("cpu");
});

Deno.test("settings the direct path does not cover still train, through tfjs", async () => {
  assert.ok(!directSupported("tanh", "linear", "logits"));
  const cfg = await cfgWith({
    noiseDim: 4,
    counterfeiter: { hidden: [8], activation: "tanh" },
    police: { hidden: [8], activation: "leakyRelu", dropout: 0.3 },
  });
  const a = await run(cfg, true, 2, 12);
  const b = await run(cfg, false, 2, 12);
  assert.deepEqual(a.history, b.history); // both took the tfjs path
  await selectBackend("cpu");
});

Deno.test("meanD and generate agree with tfjs's inference forward", async () => {
  const cfg = await cfgWith({
    noiseDim: 10,
    counterfeiter: { hidden: [32] },
    police: { hidden: [32, 16], dropout: 0.3 },
  });
  await selectBackend("fast-cpu");
  const mk = (direct: boolean) => {
    const { g, d } = initNets(cfg, 784, new Rng(cfg.seed, 1), new Rng(cfg.seed, 2));
    return makeGan(cfg, g, d, streamsFor(cfg, "adversarial"), { direct });
  };
  const a = mk(true), b = mk(false);
  const noise = new Rng(3).normals(40 * 10);
  const fa = generate(a.g, noise, 10), fb = generate(b.g, noise, 10);
  assert.deepEqual(Array.from(fa), Array.from(fb));
  assert.equal(meanD(a.d, fa, 784), meanD(b.d, fb, 784));
  // a step later both still agree
  fitPolice(a, fa, fa, { dim: 784, batchSize: 16 });
  fitPolice(b, fb, fb, { dim: 784, batchSize: 16 });
  fitCounterfeiter(a, noise, { batchSize: 16 });
  fitCounterfeiter(b, noise, { batchSize: 16 });
  assert.equal(meanD(a.d, fa, 784), meanD(b.d, fb, 784));
  await selectBackend("cpu");
});
