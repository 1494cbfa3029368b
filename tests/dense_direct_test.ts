/** The direct (autodiff-free) training path against tfjs's autodiff on the same backend. */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { selectBackend } from "../stages/backends/mod.ts";
import type { Config } from "../stages/schema.ts";
import { Rng } from "../pipeline/rng.ts";
import { makeGan } from "../stages/training/gan.ts";
import { bceLogitsAndGrad, directSupported } from "../stages/training/dense_direct.ts";
import { bceFromLogits } from "../stages/training/losses.ts";
import { NO_TRICKS } from "../stages/training/path.ts";
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

/**
 * Runs `iterations` of the loop from a seeded init on the direct path or tfjs's autodiff
 * (insisted on, and checked that it ran); returns history and final weights.
 */
async function run(cfg: Config, direct: boolean, iterations: number, dim: number) {
  const r = await loopRun(cfg, direct ? "direct" : "autodiff", iterations, dim);
  assert.equal(r.kind, direct ? "direct" : "autodiff");
  return r;
}

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
  const a = await loopRun(cfg, "auto", 2, 12);
  assert.equal(a.kind, "autodiff");
  const b = await run(cfg, false, 2, 12);
  assert.deepEqual(a.history, b.history);
  await assert.rejects(
    () => loopRun(cfg, "direct", 2, 12),
    /the direct training path cannot run: the counterfeiter's tanh\/linear layers/,
  );
  await selectBackend("cpu");
});

Deno.test("meanD and generate agree with tfjs's inference forward", async () => {
  const cfg = await cfgWith({
    noiseDim: 10,
    counterfeiter: { hidden: [32] },
    police: { hidden: [32, 16], dropout: 0.3 },
  });
  await selectBackend("fast-cpu");
  const mk = (path: "direct" | "autodiff") => {
    const { g, d } = initNets(cfg, 784, new Rng(cfg.seed, 1), new Rng(cfg.seed, 2));
    return makeGan(cfg, g, d, streamsFor(cfg, "adversarial"), { path }).path;
  };
  const a = mk("direct"), b = mk("autodiff");
  assert.deepEqual([a.kind, b.kind], ["direct", "autodiff"]);
  const [na, nb] = [a, b].map((p) => p.upload(new Rng(3).normals(40 * 10), 10));
  const fa = a.generate(na), fb = b.generate(nb);
  assert.deepEqual(Array.from(await a.download(fa)), Array.from(await b.download(fb)));
  assert.equal(await a.meanD(fa), await b.meanD(fb));
  // a step later both still agree
  const police = { batchSize: 16, tricks: NO_TRICKS, rateFactor: 1 };
  await a.fitPolice(fa, fa, police);
  await b.fitPolice(fb, fb, police);
  const counterfeiter = { batchSize: 16, policeDropout: false, instanceNoise: 0, rateFactor: 1 };
  await a.fitCounterfeiter(na, counterfeiter);
  await b.fitCounterfeiter(nb, counterfeiter);
  assert.equal(await a.meanD(fa), await b.meanD(fb));
  await selectBackend("cpu");
});

Deno.test("the direct path matches tfjs with widths the SIMD kernels cannot take (not multiples of 4)", async () => {
  // 6 and 10 wide hidden layers: the elementwise steps run in plain JS
  const cfg = await cfgWith({
    noiseDim: 3,
    counterfeiter: { hidden: [6] },
    police: { hidden: [10, 6], dropout: 0.3 },
  });
  const a = await run(cfg, true, 3, 18);
  const b = await run(cfg, false, 3, 18);
  assert.deepEqual(a.history, b.history);
  assert.deepEqual(a.weights, b.weights);
  await selectBackend("cpu");
});
