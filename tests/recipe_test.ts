/** The recipe knobs: validated, wired into training, off by default, and fast on fast-cpu. */
import assert from "node:assert/strict";
import { selectBackend } from "../stages/backends/mod.ts";
import type { Config } from "../stages/schema.ts";
import { instanceNoiseAt, learningRateFactor } from "../stages/training/loop.ts";
import { adamFor } from "../stages/training/gan.ts";
import { directSupported } from "../stages/training/dense_direct.ts";
import { configOf, loopRun, tinyConfig } from "./helpers.ts";

const FILES = { trainImages: "a", trainLabels: "b", testImages: "c", testLabels: "d" };

async function cfgWith(extra: Record<string, unknown> = {}, overrides: string[] = []) {
  const dir = await Deno.makeTempDir();
  const base = tinyConfig(FILES, {
    model: { noiseDim: 4, counterfeiter: { hidden: [16] }, police: { hidden: [16, 8] } },
    adversarial: { iterations: 3, batchSize: 40, fitBatchSize: 16 },
    ...extra,
  });
  try {
    return await configOf(dir, base, overrides);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * `iterations` of the loop from a seeded init on random [0,1] rows, on the direct path or
 * tfjs's autodiff (each insisted on: a path that cannot run is an error); history and weights.
 */
async function run(cfg: Config, direct: boolean, iterations = 3, dim = 20) {
  const r = await loopRun(cfg, direct ? "direct" : "autodiff", iterations, dim, 200);
  await selectBackend("cpu");
  assert.equal(r.kind, direct ? "direct" : "autodiff");
  return { history: r.history, weights: r.weights.flat() };
}

const EVERY_KNOB = [
  "model.pixelScale=symmetric",
  "model.counterfeiter.outputActivation=tanh",
  "model.counterfeiter.activation=leakyRelu",
  "model.counterfeiter.leakySlope=0.2",
  "model.counterfeiter.dropout=0.2",
  "model.police.activation=leakyRelu",
  "model.police.leakySlope=0.1",
  "optimizer.police.learningRate=0.0002",
  "optimizer.counterfeiter.beta1=0.5",
  "adversarial.policeSteps=2",
  "adversarial.realLabel=0.9",
  "adversarial.labelNoise=0.1",
  "adversarial.instanceNoise=0.2",
  "adversarial.instanceNoiseUntil=2",
  "adversarial.learningRateHalfLife=2",
];

Deno.test("every knob at once: the direct path agrees with tfjs's autodiff", async () => {
  for (const loss of ["bce", "leastSquares", "hinge"]) {
    const cfg = await cfgWith({}, [...EVERY_KNOB, `loss.counterfeiter=${loss}`]);
    assert.ok(directSupported("leakyRelu", "tanh", "logits"));
    const a = await run(cfg, true);
    const b = await run(cfg, false);
    assert.equal(a.history.length, 3);
    // the same random draws in the same order; only float rounding may differ
    a.history.flat().forEach((v, i) =>
      assert.ok(Math.abs(v - b.history.flat()[i]) < 1e-4, `${loss}: history ${i}: ${v}`)
    );
    a.weights.forEach((v, i) =>
      assert.ok(Math.abs(v - b.weights[i]) < 1e-4, `${loss}: weight ${i}: ${v} vs ${b.weights[i]}`)
    );
  }
});

Deno.test("each knob changes training, and the defaults are the lecture", async () => {
  const lecture = await run(await cfgWith(), true);
  const explicit = await run(
    await cfgWith({}, [
      "model.pixelScale=unit",
      "model.counterfeiter.dropout=0",
      "adversarial.policeSteps=1",
      "adversarial.realLabel=1",
      "adversarial.labelNoise=0",
      "adversarial.instanceNoise=0",
      "loss.counterfeiter=bce",
    ]),
    true,
  );
  assert.deepEqual(explicit, lecture);
  for (const knob of [...EVERY_KNOB.slice(3), "loss.counterfeiter=hinge"]) {
    if (knob.endsWith("instanceNoiseUntil=2")) continue; // needs instanceNoise; checked below
    const extra = knob.includes("leakySlope")
      ? [knob.replace(/leakySlope=.*/, "activation=leakyRelu")]
      : [];
    const r = await run(await cfgWith({}, [...extra, knob]), true);
    assert.notDeepEqual(r.history, lecture.history, knob);
  }
  const flat = await run(await cfgWith({}, ["adversarial.instanceNoise=0.2"]), true);
  const decays = await run(
    await cfgWith({}, ["adversarial.instanceNoise=0.2", "adversarial.instanceNoiseUntil=2"]),
    true,
  );
  assert.notDeepEqual(decays.history, flat.history);
});

Deno.test("per-net Adam settings fall back to the shared ones", async () => {
  const cfg = await cfgWith({}, ["optimizer.police.learningRate=0.0002"]);
  assert.equal(adamFor(cfg.optimizer, "police").learningRate, 0.0002);
  assert.equal(adamFor(cfg.optimizer, "counterfeiter").learningRate, 0.001);
  assert.equal(adamFor(cfg.optimizer, "police").beta1, 0.9);
});

Deno.test("instance noise decays linearly to 0 at instanceNoiseUntil", () => {
  const a = { instanceNoiseUntil: null };
  assert.equal(instanceNoiseAt({ ...a, instanceNoise: 0.4 }, 900), 0.4);
  const d = { ...a, instanceNoise: 0.4, instanceNoiseUntil: 100 };
  assert.equal(instanceNoiseAt(d, 1), 0.4);
  assert.ok(Math.abs(instanceNoiseAt(d, 51) - 0.2) < 1e-12);
  assert.equal(instanceNoiseAt(d, 100), 0);
  assert.equal(instanceNoiseAt(d, 300), 0);
});

Deno.test("learning rates halve every learningRateHalfLife iterations from the first", () => {
  assert.equal(learningRateFactor({ learningRateHalfLife: null }, 900), 1);
  const h = { learningRateHalfLife: 300 };
  assert.equal(learningRateFactor(h, 1), 1);
  assert.ok(Math.abs(learningRateFactor(h, 301) - 0.5) < 1e-12);
  assert.ok(Math.abs(learningRateFactor(h, 601) - 0.25) < 1e-12);
});

Deno.test("recipe knobs reject what cannot work, naming the fix", async () => {
  await assert.rejects(
    () => cfgWith({}, ["model.counterfeiter.outputActivation=tanh"]),
    /outputActivation: "tanh" cannot cover pixelScale "unit"; use "linear" or "sigmoid" or "relu"/,
  );
  await assert.rejects(
    () =>
      cfgWith({}, ["model.pixelScale=symmetric", "model.counterfeiter.outputActivation=sigmoid"]),
    /cannot cover pixelScale "symmetric"; use "linear" or "tanh"/,
  );
  await assert.rejects(
    () => cfgWith({}, ["adversarial.instanceNoiseUntil=100"]),
    /instanceNoiseUntil: set, but adversarial.instanceNoise is 0/,
  );
  await assert.rejects(() => cfgWith({}, ["adversarial.realLabel=0.3"]), /realLabel/);
  await assert.rejects(() => cfgWith({}, ["loss.counterfeiter=wasserstein"]), /counterfeiter/);
});

Deno.test("the goal marks: window mean, best-checkpoint Frechet, class shares, shortfalls", async () => {
  const { goalMarks } = await import("../stages/evaluation/goal.ts");
  const row = (iteration: number | "final", dReal: number, dFake: number, frechet: number) => ({
    iteration,
    dReal,
    dFake,
    frechet,
    classifierScore: 7.5,
    classesCovered: 10,
    klToUniform: 0,
    outOfRangeFraction: 0,
    classHistogram: [30, 10, 10, 10, 10, 10, 10, 5, 3, 2],
  });
  const g = goalMarks({
    reference: { frechet: 2 },
    checkpoints: [
      row(10, 0.99, 0.01, 5),
      row(91, 0.7, 0.4, 9),
      row(100, 0.5, 0.4, 8),
      row("final", 0.5, 0.4, 8),
    ],
  });
  const by = (s: string) => g.marks.find((m) => m.name.startsWith(s))!;
  assert.ok(Math.abs(by("D(real)").value - 0.6) < 1e-12); // 91 and 100, not 10
  assert.ok(by("D(real)").met && by("D(fake)").met);
  assert.ok(!by("classifier").met && Math.abs(by("classifier").short - 0.5) < 1e-12);
  assert.match(by("class shares").name, /digit 0/);
  assert.ok(Math.abs(by("class shares").short - 0.15) < 1e-12); // 30% vs the 15% ceiling
  assert.match(by("Frechet").name, /best checkpoint \(10\)/);
  assert.ok(by("Frechet").met); // 5 <= 3 x 2
  assert.equal(g.met, 3);
  assert.ok(g.miss > 0);
  // every class inside [5%, 15%]: the mark names the digit nearest to leaving it (digit 3 at
  // 5.5%, not digit 0), so a table's "furthest class share" says how close the run came
  const inside = goalMarks({
    reference: { frechet: 2 },
    checkpoints: [{
      ...row("final", 0.5, 0.5, 3),
      classHistogram: [10, 10, 10, 5.5, 10, 10, 10, 10, 14, 10.5],
    }],
  }).marks.find((m) => m.name.startsWith("class shares"))!;
  assert.ok(inside.met);
  assert.match(inside.name, /nearest an edge: digit 3/);
  assert.ok(Math.abs(inside.value - 0.055) < 1e-12);
});
