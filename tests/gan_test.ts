/** The lecture's GAN semantics on tiny data and small networks. */
import assert from "node:assert/strict";
import { ResumableState } from "../pipeline/resumable.ts";
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { join } from "node:path";
import { selectBackend } from "../stages/backends/mod.ts";
import { Progress } from "../pipeline/progress.ts";
import { Rng } from "../pipeline/rng.ts";
import { adversarialStage } from "../stages/adversarial.ts";
import { adversarialIterations } from "../stages/training/loop.ts";
import { historyNumbers, type HistoryRow } from "../stages/vocabulary.ts";
import { bceClipped, bceFromLogits } from "../stages/training/losses.ts";
import { type Gan, makeGan } from "../stages/training/gan.ts";
import { NO_TRICKS } from "../stages/training/path.ts";
import { fitEpoch } from "../stages/training/fit.ts";
import { fileLoadHandler, loadNet, saveNet } from "../stages/formats/model_io.ts";
import { forward, initNets, variablesOf } from "../stages/training/nets.ts";
import { streamsFor } from "../stages/training/streams.ts";
import type { Config } from "../stages/schema.ts";
import { configOf, tinyConfig } from "./helpers.ts";

await selectBackend("cpu");

/** One police epoch on host rows of `dim` numbers. */
function fitPolice(
  gan: Gan,
  real: Float32Array,
  fake: Float32Array,
  dim: number,
  batchSize: number,
) {
  const { path } = gan;
  return path.fitPolice(path.upload(real, dim), path.upload(fake, dim), {
    batchSize,
    tricks: NO_TRICKS,
    rateFactor: 1,
  });
}

/** One counterfeiter epoch on host noise rows. */
function fitCounterfeiter(gan: Gan, noise: Float32Array, batchSize: number, policeDropout = false) {
  return gan.path.fitCounterfeiter(gan.path.upload(noise, gan.noiseDim), {
    batchSize,
    policeDropout,
    instanceNoise: 0,
    rateFactor: 1,
  });
}

/** The police's mean probability over host rows. */
const meanD = (gan: Gan, x: Float32Array, dim: number) => gan.path.meanD(gan.path.upload(x, dim));

/** Two clusters in 4-D as "real" data. */
function toyData(n: number, rng: Rng): Float32Array {
  const x = new Float32Array(n * 4);
  for (let i = 0; i < n; i++) {
    const c = i % 2 === 0 ? [0.9, 0.1, 0.9, 0.1] : [0.1, 0.9, 0.1, 0.9];
    for (let j = 0; j < 4; j++) x[i * 4 + j] = c[j] + 0.05 * rng.normal();
  }
  return x;
}

async function toyConfig(extra: Record<string, unknown> = {}): Promise<Config> {
  const dir = await Deno.makeTempDir();
  return await configOf(
    dir,
    tinyConfig({ trainImages: "a", trainLabels: "b", testImages: "c", testLabels: "d" }, {
      model: {
        noiseDim: 2,
        counterfeiter: { hidden: [16] },
        police: { hidden: [16], dropout: 0.3 },
      },
      adversarial: { iterations: 6, batchSize: 32, fitBatchSize: 8, checkpointEvery: 2 },
      ...extra,
    }),
  );
}

async function runToy(cfg: Config, iterations: number) {
  const { g, d } = initNets(cfg, 4, new Rng(cfg.seed, 1), new Rng(cfg.seed, 2));
  const gan = makeGan(cfg, g, d, streamsFor(cfg, "adversarial"));
  const train = toyData(200, new Rng(99));
  const history: HistoryRow[] = [];
  await adversarialIterations(gan, cfg.adversarial, { train, dim: 4, to: iterations, history });
  return { gan, history, train };
}

Deno.test("same config and seed -> identical history bit for bit; another seed differs", async () => {
  const cfg = await toyConfig();
  const a = await runToy(cfg, 4), b = await runToy(cfg, 4);
  assert.deepEqual(historyNumbers(a.history), historyNumbers(b.history));
  const c = await runToy({ ...cfg, seed: cfg.seed + 1 }, 4);
  assert.notDeepEqual(historyNumbers(a.history), historyNumbers(c.history));
});

Deno.test("measureRows: the D figures on the batch's first rows; training, losses and weights unchanged", async () => {
  const adv = { iterations: 6, batchSize: 32, fitBatchSize: 8, checkpointEvery: 2 };
  const run = async (measureRows: number | null, policeSteps = 1) =>
    await runToy(await toyConfig({ adversarial: { ...adv, measureRows, policeSteps } }), 4);
  const weights = (gan: Gan) =>
    [...variablesOf(gan.g), ...variablesOf(gan.d)].map((v) => Array.from(v.dataSync()));
  for (const policeSteps of [1, 3]) {
    const full = await run(null, policeSteps), few = await run(5, policeSteps);
    const losses = (h: HistoryRow[]) => h.map((r) => [r.policeLoss, r.counterfeiterLoss]);
    assert.deepEqual(losses(few.history), losses(full.history));
    assert.deepEqual(weights(few.gan), weights(full.gan));
    const d = (h: HistoryRow[]) =>
      h.map((r) => [
        r.dRealBefore,
        r.dFakeBefore,
        r.dRealAfterPolice,
        r.dFakeAfterPolice,
        r.dFakeAfterCounterfeiter,
      ]);
    // every figure is measured on other rows: none comes out the same by accident
    d(few.history).flat().forEach((v, i) => assert.notEqual(v, d(full.history).flat()[i]));
    // the whole batch or more is the lecture's figures
    const whole = await run(32, policeSteps);
    assert.deepEqual(historyNumbers(whole.history), historyNumbers(full.history));
  }
});

Deno.test("loss from logits equals the clipped form where nothing saturates", () => {
  const logits = tf.tensor2d([[-2], [-0.5], [0], [0.7], [3]]);
  const labels = tf.tensor2d([[1], [0], [1], [0], [1]]);
  const a = bceFromLogits(logits, labels).dataSync()[0];
  const b = bceClipped(logits, labels).dataSync()[0];
  assert.ok(Math.abs(a - b) < 1e-6, `${a} vs ${b}`);
  // by hand: mean of -log(sigmoid(l)) for y=1 and -log(1-sigmoid(l)) for y=0
  const sig = (z: number) => 1 / (1 + Math.exp(-z));
  const hand =
    (-Math.log(sig(-2)) - Math.log(1 - sig(-0.5)) - Math.log(sig(0)) - Math.log(1 - sig(0.7)) -
      Math.log(sig(3))) / 5;
  assert.ok(Math.abs(a - hand) < 1e-6);
});

Deno.test("where the sigmoid saturates, logits keep a gradient and the clipped form loses it", () => {
  const labels = tf.tensor2d([[1]]);
  const x = tf.tensor2d([[-30]]); // the police is sure it is fake; the target says real
  const gLogits = tf.grad((l: tf.Tensor) => bceFromLogits(l, labels))(x).dataSync()[0];
  const gClipped = tf.grad((l: tf.Tensor) => bceClipped(l, labels))(x).dataSync()[0];
  assert.ok(Math.abs(gLogits + 1) < 1e-4, `logits gradient ${gLogits}`); // d/dl = sigmoid(l) - 1
  assert.equal(gClipped, 0);
});

Deno.test("the counterfeiter step changes no police weight and draws no dropout; the police step does", async () => {
  const cfg = await toyConfig();
  const { g, d } = initNets(cfg, 4, new Rng(1), new Rng(2));
  const gan = makeGan(cfg, g, d, streamsFor(cfg, "adversarial"));
  const before = variablesOf(d).map((v) => v.dataSync().slice());
  const gBefore = variablesOf(g).map((v) => v.dataSync().slice());
  const dropState = JSON.stringify(gan.streams.dropout.state());
  await fitCounterfeiter(gan, new Rng(3).normals(32 * 2), 8);
  variablesOf(d).forEach((v, i) => assert.deepEqual(v.dataSync(), before[i]));
  assert.ok(variablesOf(g).some((v, i) => v.dataSync().some((x, j) => x !== gBefore[i][j])));
  assert.equal(
    JSON.stringify(gan.streams.dropout.state()),
    dropState,
    "dropout ran in the counterfeiter step",
  );
  // the knob turns it on
  await fitCounterfeiter(gan, new Rng(3).normals(32 * 2), 8, true);
  assert.notEqual(JSON.stringify(gan.streams.dropout.state()), dropState);
  // the police step uses dropout: its masks come from the dropout stream
  const s2 = JSON.stringify(gan.streams.dropout.state());
  await fitPolice(gan, toyData(16, new Rng(4)), toyData(16, new Rng(5)), 4, 8);
  assert.notEqual(JSON.stringify(gan.streams.dropout.state()), s2);
});

Deno.test("dropout on changes the police's output; off, it is deterministic", async () => {
  const cfg = await toyConfig();
  const { d } = initNets(cfg, 4, new Rng(1), new Rng(2));
  const x = tf.tensor2d(toyData(8, new Rng(1)), [8, 4]);
  const a = forward(d, x).dataSync(), b = forward(d, x).dataSync();
  assert.deepEqual(a, b);
  const c = forward(d, x, new Rng(7)).dataSync();
  assert.notDeepEqual(a, c);
});

Deno.test("Keras semantics: a fit on 1000 rows with fitBatchSize 32 takes exactly 32 steps", async () => {
  const cfg = await toyConfig();
  const { g, d } = initNets(cfg, 4, new Rng(1), new Rng(2));
  const gan = makeGan(cfg, g, d, streamsFor(cfg, "adversarial"));
  assert.equal(gan.path.kind, "autodiff"); // the cpu backend
  const res = await fitPolice(gan, toyData(500, new Rng(1)), toyData(500, new Rng(2)), 4, 32);
  assert.equal(res.steps, 32);
  assert.equal(gan.optD.t, 32);
  const cf = await fitCounterfeiter(gan, new Rng(3).normals(500 * 2), 32);
  assert.equal(cf.steps, 16);
  assert.equal(gan.optG.t, 16);
  const sizes: number[] = [];
  fitEpoch(1000, 32, new Rng(1), (rows) => (sizes.push(rows.length), 0));
  assert.deepEqual([sizes.length, sizes.at(-1), new Set(sizes.slice(0, -1)).size], [32, 8, 1]);
});

Deno.test("on a two-cluster toy problem the game learns: D(fake) moves toward D(real)", async () => {
  const cfg = await toyConfig({
    adversarial: { iterations: 60, batchSize: 64, fitBatchSize: 16, checkpointEvery: 10 },
    optimizer: { learningRate: 0.005 },
  });
  const { g, d } = initNets(cfg, 4, new Rng(cfg.seed, 1), new Rng(cfg.seed, 2));
  const gan = makeGan(cfg, g, d, streamsFor(cfg, "adversarial"));
  const train = toyData(400, new Rng(99));
  const centers = [[0.9, 0.1, 0.9, 0.1], [0.1, 0.9, 0.1, 0.9]];
  const z = new Rng(5).normals(200 * 2);
  const dist = () => {
    const x = forward(gan.g, tf.tensor2d(z, [200, 2])).dataSync();
    let s = 0;
    for (let i = 0; i < 200; i++) {
      s += Math.min(...centers.map((c) => Math.hypot(...c.map((v, j) => x[i * 4 + j] - v))));
    }
    return s / 200;
  };
  // the lecture's warm-up, made stronger: the police first learns to tell the two apart
  const z0 = new Rng(6).normals(64 * 2);
  const fakes0 = forward(gan.g, tf.tensor2d(z0, [64, 2])).dataSync() as Float32Array;
  for (let i = 0; i < 20; i++) {
    await fitPolice(gan, train.subarray(0, 64 * 4), fakes0, 4, 16);
  }
  const gapStart = await meanD(gan, train.subarray(0, 256 * 4), 4) - await meanD(gan, fakes0, 4);
  const distStart = dist();
  const history: HistoryRow[] = [];
  await adversarialIterations(gan, cfg.adversarial, { train, dim: 4, to: 60, history });
  const gapEnd = history.slice(-10).reduce((s, r) => s + (r.dRealBefore - r.dFakeBefore), 0) / 10;
  assert.ok(gapStart > 0.2, `the warm-up police cannot tell real from fake (gap ${gapStart})`);
  assert.ok(gapEnd < gapStart / 2, `gap D(real)-D(fake) did not shrink: ${gapStart} -> ${gapEnd}`);
  assert.ok(dist() < distStart / 2, `samples did not approach the data: ${distStart} -> ${dist()}`);
});

Deno.test("tensor memory is flat across iterations", async () => {
  const cfg = await toyConfig();
  const { g, d } = initNets(cfg, 4, new Rng(1), new Rng(2));
  const gan = makeGan(cfg, g, d, streamsFor(cfg, "adversarial"));
  const counts: number[] = [];
  await adversarialIterations(gan, cfg.adversarial, {
    train: toyData(100, new Rng(1)),
    dim: 4,
    to: 8,
    history: [],
    onIteration: () => {
      counts.push(tf.memory().numTensors);
    },
  });
  assert.equal(new Set(counts).size, 1, `numTensors changed: ${counts}`);
});

Deno.test("a saved model loads back with tf.loadLayersModel through our IO handler, same outputs", async () => {
  const cfg = await toyConfig();
  const { g, d } = initNets(cfg, 4, new Rng(1), new Rng(2));
  const dir = await Deno.makeTempDir();
  await saveNet(join(dir, "g"), g);
  await saveNet(join(dir, "d"), d, {
    t: 3,
    m: variablesOf(d).map((v) => new Float32Array(v.size).fill(1)),
    v: variablesOf(d).map((v) => new Float32Array(v.size)),
  });
  const x = tf.tensor2d(new Rng(2).normals(6 * 2), [6, 2]);
  const mg = await tfl.loadLayersModel(fileLoadHandler(join(dir, "g")));
  const want = forward(g, x).dataSync();
  const got = (mg.predict(x) as tf.Tensor).dataSync();
  want.forEach((w, i) => assert.ok(Math.abs(w - got[i]) < 1e-6));
  const md = await tfl.loadLayersModel(fileLoadHandler(join(dir, "d")));
  const imgs = tf.tensor2d(toyData(5, new Rng(3)), [5, 4]);
  const pd = (md.predict(imgs) as tf.Tensor).dataSync();
  const ref = tf.sigmoid(forward(d, imgs)).dataSync();
  ref.forEach((w, i) => assert.ok(Math.abs(w - pd[i]) < 1e-6));
  const back = await loadNet(join(dir, "d"));
  assert.equal(back.adam?.t, 3);
  assert.equal(back.adam?.m[0][0], 1);
});

/** Upstream artifacts for the adversarial stage on toy data, and a context to run it with. */
async function adversarialSetup() {
  const cfg = await toyConfig();
  // upstream artifacts for the stage: a preprocess folder and warm-up models
  const root = await Deno.makeTempDir();
  const pre = join(root, "pre"), pol = join(root, "pol"), cf = join(root, "cf");
  await Deno.mkdir(pre);
  const { writeNpy } = await import("../stages/formats/npy.ts");
  await writeNpy(join(pre, "train_x.npy"), toyData(100, new Rng(1)), [100, 4]);
  const { g, d } = initNets(cfg, 4, new Rng(1), new Rng(2));
  await saveNet(join(pol, "police"), d);
  await saveNet(join(cf, "counterfeiter"), g);
  const inputs = { preprocess: pre, train_police: pol, train_counterfeiter: cf };
  const ctx = (outDir: string, workDir: string, c: Config, log?: string[]) => ({
    cfg: c,
    outDir,
    inputs,
    resume: new ResumableState(workDir, (line) => log?.push(line)),
    progress: new Progress({ quiet: true }),
    runtime: { facts: { backend: "cpu", tfjs: tf.version_core, denormals: "flush" } },
  });
  const read = async (dir: string) =>
    historyNumbers(JSON.parse(await Deno.readTextFile(join(dir, "history.json"))));
  return { cfg, root, ctx, read };
}

Deno.test("resuming the adversarial stage from a checkpoint equals the uninterrupted run", async () => {
  const { cfg, root, ctx, read } = await adversarialSetup();
  // uninterrupted: 6 iterations
  const full = join(root, "full");
  await Deno.mkdir(full);
  await adversarialStage.run(ctx(full, join(root, "w1"), cfg));
  // interrupted after 4 (checkpoint at 4), then resumed to 6 from the same work folder
  const part = join(root, "part"), rest = join(root, "rest");
  await Deno.mkdir(part);
  await Deno.mkdir(rest);
  const w2 = join(root, "w2");
  await adversarialStage.run(
    ctx(part, w2, { ...cfg, adversarial: { ...cfg.adversarial, iterations: 4 } }),
  );
  const summary = await adversarialStage.run(ctx(rest, w2, cfg));
  assert.equal((summary as { resumedFrom: number }).resumedFrom, 4);
  assert.deepEqual(await read(rest), await read(full));
});

Deno.test("a damaged resume state is set aside in one line and the run starts over, to the same bits", async () => {
  const { cfg, root, ctx, read } = await adversarialSetup();
  const full = join(root, "full");
  await Deno.mkdir(full);
  await adversarialStage.run(ctx(full, join(root, "w1"), cfg));
  const damages: [string, (p: string) => Promise<void>][] = [
    ["counterfeiter/weights.bin", async (p) => {
      const b = await Deno.readFile(p);
      b[7] ^= 1;
      await Deno.writeFile(p, b);
    }],
    ["history.json", (p) => Deno.truncate(p, 10)],
    ["police/adam_v.npy", (p) => Deno.remove(p)],
    ["seal.json", (p) => Deno.writeTextFile(p, "{")],
  ];
  for (const [file, damage] of damages) {
    const w = join(root, `w-${file.replaceAll("/", "-")}`), part = join(root, `part-${file}`);
    await Deno.mkdir(part, { recursive: true });
    await adversarialStage.run(
      ctx(part, w, { ...cfg, adversarial: { ...cfg.adversarial, iterations: 4 } }),
    );
    await damage(join(w, "state", file));
    const log: string[] = [], rest = join(root, `rest-${file}`);
    await Deno.mkdir(rest, { recursive: true });
    const summary = await adversarialStage.run(ctx(rest, w, cfg, log));
    assert.equal((summary as { resumedFrom: number | null }).resumedFrom, null, file);
    assert.equal(log.length, 1, file);
    assert.match(
      log[0],
      file === "seal.json"
        ? /^the state is damaged: its seal is missing or unreadable; set aside in \S+damaged-\S+; starting from the beginning$/
        : new RegExp(
          `^resume state at 4 is damaged: ${file} (does not match its seal|is missing); set aside in \\S+; starting from the beginning$`,
        ),
    );
    assert.deepEqual(await read(rest), await read(full), file);
  }
});

Deno.test("a loss or weight that becomes NaN stops the loop with the iteration and the likely cause", async () => {
  const cfg = await toyConfig({ optimizer: { learningRate: 1e30 } });
  const { g, d } = initNets(cfg, 4, new Rng(1), new Rng(2));
  const gan = makeGan(cfg, g, d, streamsFor(cfg, "adversarial"));
  await assert.rejects(
    () =>
      adversarialIterations(gan, cfg.adversarial, {
        train: toyData(100, new Rng(1)),
        dim: 4,
        to: 3,
        history: [],
      }),
    /iteration 1: (police|counterfeiter) .*NaN or infinite.*learning rate.*last checkpoint is kept/,
  );
});
