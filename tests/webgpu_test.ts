/**
 * The webgpu backend on whatever adapter the machine has (lavapipe in CI, which .ci/run
 * installs): its steps against fast-cpu's, its bits run to run, a killed and an extended
 * run against one made in one go, the key naming the adapter, and its errors.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { Rng } from "../pipeline/rng.ts";
import { selectBackend } from "../stages/backends/mod.ts";
import { acquireGpu, openGpu } from "../stages/backends/webgpu.ts";
import type { Config } from "../stages/schema.ts";
import { WeightAverage } from "../stages/training/ema.ts";
import { makeGan } from "../stages/training/gan.ts";
import { GpuPath, type KernelProfile } from "../stages/training/gpu_path.ts";
import { adversarialIterations } from "../stages/training/loop.ts";
import { initNets, variablesOf } from "../stages/training/nets.ts";
import { NO_TRICKS, type PathKind } from "../stages/training/path.ts";
import { streamsFor } from "../stages/training/streams.ts";
import { historyNumbers, type HistoryRow } from "../stages/vocabulary.ts";
import { cli, cliSpawn, configOf, tinyConfig, tinyRun } from "./helpers.ts";

/** Whether there is an adapter to test on (none in CI is a failure: .ci/run installs one). */
async function haveGpu(): Promise<boolean> {
  if (await acquireGpu(true)) return true;
  if (Deno.env.get("CI")) {
    throw new Error("CI must run the webgpu tests: .ci/run installs mesa-vulkan-drivers");
  }
  console.error(
    "no WebGPU adapter: skipping the webgpu tests (apt-get install mesa-vulkan-drivers)",
  );
  return false;
}
const GPU = await haveGpu();

function cfgWith(model: Record<string, unknown>, adv: Record<string, unknown> = {}, more = {}) {
  return Deno.makeTempDir().then((dir) =>
    configOf(
      dir,
      tinyConfig({ trainImages: "a", trainLabels: "b", testImages: "c", testLabels: "d" }, {
        model,
        adversarial: { iterations: 5, batchSize: 50, fitBatchSize: 16, ...adv },
        ...more,
      }),
    )
  );
}

/** A small GAN on the host path (a counterfeiter of 8 units) to build a GPU path from. */
async function hostGan(policeHidden: number[], dim: number) {
  const cfg = await cfgWith({
    noiseDim: 3,
    counterfeiter: { hidden: [8] },
    police: { hidden: policeHidden },
  });
  const { g, d } = initNets(cfg, dim, new Rng(1, 1), new Rng(1, 2));
  return makeGan(cfg, g, d, streamsFor(cfg, "adversarial"), { path: "direct" });
}

/** `iterations` of the loop on `path` from a seeded init: figures, weights, Adam, average. */
async function train(
  cfg: Config,
  path: PathKind,
  iterations: number,
  dim: number,
  profiles?: KernelProfile[],
) {
  await selectBackend(path === "webgpu" ? "webgpu" : "fast-cpu");
  const { g, d } = initNets(cfg, dim, new Rng(cfg.seed, 1), new Rng(cfg.seed, 2));
  const average = cfg.adversarial.ema === null ? null : new WeightAverage(cfg.adversarial.ema, g);
  const gan = makeGan(cfg, g, d, streamsFor(cfg, "adversarial"), { path, average });
  assert.equal(gan.path.kind, path);
  const history: HistoryRow[] = [];
  const rows = new Rng(7).uniforms(300 * dim);
  if (profiles) (gan.path as GpuPath).startProfile();
  await adversarialIterations(gan, cfg.adversarial, { train: rows, dim, to: iterations, history });
  if (profiles) profiles.push(await (gan.path as GpuPath).stopProfile());
  await gan.path.sync();
  gan.path.dispose();
  const arrays = (xs: ArrayLike<number>[]) => xs.map((a) => Array.from(a));
  return {
    history: historyNumbers(history),
    weights: arrays([...variablesOf(g), ...variablesOf(d)].map((v) => v.dataSync())),
    adam: arrays([
      ...gan.optG.engine.m,
      ...gan.optG.engine.v,
      ...gan.optD.engine.m,
      ...gan.optD.engine.v,
    ]),
    steps: [gan.optG.t, gan.optD.t],
    average: average ? arrays(average.values) : [],
  };
}

/** The largest difference between two lists of arrays, relative to the largest value. */
function relDiff(a: number[][], b: number[][]): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  a.forEach((x, i) => {
    let num = 0, den = 1e-30;
    x.forEach((v, k) => {
      num = Math.max(num, Math.abs(v - b[i][k]));
      den = Math.max(den, Math.abs(v));
    });
    worst = Math.max(worst, num / den);
  });
  return worst;
}

/** History figures agree within `tol` (they are probabilities and losses of order 1). */
function closeHistory(a: number[][], b: number[][], tol: number) {
  assert.equal(a.length, b.length);
  a.forEach((row, i) =>
    row.forEach((v, k) =>
      assert.ok(Math.abs(v - b[i][k]) <= tol, `iteration ${i + 1}, figure ${k}: ${v} vs ${b[i][k]}`)
    )
  );
}

Deno.test({
  name: "webgpu agrees with fast-cpu over 5 iterations: figures to 1e-4, weights and Adam to 1e-4",
  ignore: !GPU,
  async fn() {
    // 784-wide input, 3 hidden layers with dropout, a partial last minibatch (50 = 3*16 + 2)
    const cfg = await cfgWith({
      noiseDim: 10,
      counterfeiter: { hidden: [32, 64] },
      police: { hidden: [64, 32, 16], dropout: 0.3 },
    });
    const cpu = await train(cfg, "direct", 5, 784);
    // the host waits on the device once an iteration, plus the final sync's reads
    const map = GPUBuffer.prototype.mapAsync;
    let reads = 0;
    GPUBuffer.prototype.mapAsync = function (...args) {
      reads++;
      return map.apply(this, args);
    };
    const gpu = await train(cfg, "webgpu", 5, 784).finally(() => {
      GPUBuffer.prototype.mapAsync = map;
    });
    assert.equal(reads, 5 + 6, `${reads} reads`);
    closeHistory(cpu.history, gpu.history, 1e-4);
    assert.ok(
      relDiff(cpu.weights, gpu.weights) < 1e-4,
      `weights ${relDiff(cpu.weights, gpu.weights)}`,
    );
    assert.ok(relDiff(cpu.adam, gpu.adam) < 1e-3, `Adam moments ${relDiff(cpu.adam, gpu.adam)}`);
    assert.deepEqual(cpu.steps, gpu.steps);
    await selectBackend("cpu");
  },
});

Deno.test({
  name:
    "webgpu with every trick: dropout in the counterfeiter step, flips, noise, average, tanh, leakyRelu, least squares",
  ignore: !GPU,
  async fn() {
    const cfg = await cfgWith(
      {
        noiseDim: 6,
        counterfeiter: {
          hidden: [24],
          activation: "leakyRelu",
          outputActivation: "tanh",
          dropout: 0.2,
        },
        police: { hidden: [20, 12], activation: "leakyRelu", dropout: 0.5 },
        pixelScale: "symmetric",
      },
      {
        policeDropoutInCounterfeiterStep: true,
        realLabel: 0.9,
        labelNoise: 0.1,
        instanceNoise: 0.1,
        ema: 0.9,
        policeSteps: 2,
        learningRateHalfLife: 3,
      },
      { loss: { counterfeiter: "leastSquares" } },
    );
    const cpu = await train(cfg, "direct", 4, 30);
    const gpu = await train(cfg, "webgpu", 4, 30);
    closeHistory(cpu.history, gpu.history, 1e-4);
    assert.ok(
      relDiff(cpu.weights, gpu.weights) < 1e-4,
      `weights ${relDiff(cpu.weights, gpu.weights)}`,
    );
    assert.ok(
      relDiff(cpu.average, gpu.average) < 1e-4,
      `average ${relDiff(cpu.average, gpu.average)}`,
    );
    assert.ok(relDiff(cpu.adam, gpu.adam) < 1e-3, `Adam moments ${relDiff(cpu.adam, gpu.adam)}`);
    await selectBackend("cpu");
  },
});

Deno.test({
  name: "webgpu: the same config gives the same bits run to run (hinge loss, relu output)",
  ignore: !GPU,
  async fn() {
    const cfg = await cfgWith(
      {
        noiseDim: 5,
        counterfeiter: { hidden: [70], outputActivation: "relu" },
        police: { hidden: [90, 40], dropout: 0.3 },
      },
      { fitBatchSize: 7 },
      { loss: { counterfeiter: "hinge" } },
    );
    const a = await train(cfg, "webgpu", 3, 100);
    const b = await train(cfg, "webgpu", 3, 100);
    assert.deepEqual(a, b);
    // profiled (a pass a dispatch, timed): the same bits, and every kernel accounted for
    const profiles: KernelProfile[] = [];
    assert.deepEqual(await train(cfg, "webgpu", 3, 100, profiles), a);
    const kernels = profiles[0];
    // an Adam step a minibatch of 7: 3 iterations of 50 real + 50 fake (15), 50 noise (8)
    assert.equal(kernels.get("adam")!.calls, 3 * (15 + 8));
    assert.ok(kernels.get("mm00 7x90x100")!.calls > 0, [...kernels.keys()].join(", "));
    for (const [name, k] of kernels) assert.ok(k.ms >= 0 && Number.isFinite(k.ms), name);
    await selectBackend("cpu");
  },
});

Deno.test({
  name: "webgpu: D figures on fewer rows (measureRows) leave the training's bits as they were",
  ignore: !GPU,
  async fn() {
    const model = { noiseDim: 4, counterfeiter: { hidden: [20] }, police: { hidden: [24] } };
    const full = await train(await cfgWith(model), "webgpu", 3, 30);
    const few = await train(await cfgWith(model, { measureRows: 6 }), "webgpu", 3, 30);
    assert.deepEqual([few.weights, few.adam, few.steps], [full.weights, full.adam, full.steps]);
    assert.notDeepEqual(few.history, full.history);
    await selectBackend("cpu");
  },
});

Deno.test({
  name: "webgpu: a lost device fails the next step in one line naming the fix",
  ignore: !GPU,
  async fn() {
    await selectBackend("fast-cpu");
    const gpu = (await openGpu(true))!;
    const path = new GpuPath(await hostGan([8], 6), gpu);
    const real = path.upload(new Float32Array(24), 6);
    assert.ok(Number.isFinite(await path.meanD(real)));
    gpu.device.destroy();
    await gpu.device.lost;
    await assert.rejects(
      path.fitPolice(real, real, { batchSize: 2, tricks: NO_TRICKS, rateFactor: 1 }),
      /^StageError: the GPU device was lost \(destroyed.*\); nothing was sealed: run again to resume from the last checkpoint, or use --backend fast-cpu$/,
    );
    await selectBackend("cpu");
  },
});

Deno.test({
  name: "webgpu: nets past the device's buffer limit are refused in one line before any work",
  ignore: !GPU,
  async fn() {
    await selectBackend("fast-cpu");
    // a device with WebGPU's default limits (128 MiB a binding) refuses these on any adapter;
    // the pipeline's own device asks for the adapter's largest (an H200's took these nets)
    const adapter = (await navigator.gpu.requestAdapter())!;
    const device = await adapter.requestDevice();
    assert.equal(device.limits.maxStorageBufferBindingSize, 128 * 2 ** 20);
    const gpu = { device, facts: (await acquireGpu(true))!.facts, fallback: true, lost: null };
    const gan = await hostGan([4096, 4096], 784);
    assert.throws(
      () => new GpuPath(gan, gpu),
      /^StageError: the training state needs 3\d\d MiB in one GPU buffer, past this adapter's 128 MiB binding limit; use smaller nets or --backend fast-cpu$/,
    );
    device.destroy();
    await selectBackend("cpu");
  },
});

Deno.test({
  name: "auto never picks webgpu (slower than fast-cpu on the GPU measured); by name it runs",
  ignore: !GPU,
  async fn() {
    const gpu = (await acquireGpu(true))!;
    const auto = await selectBackend("auto");
    assert.notEqual(auto.name, "webgpu");
    if (auto.name === "fast-cpu") assert.match(auto.reason, /webgpu only by name/);
    const named = await selectBackend("webgpu");
    assert.equal(named.name, "webgpu");
    assert.match(named.runtime.facts.backend, /^webgpu\/.+\+fast-cpu\//);
    if (gpu.fallback) assert.ok(named.notes.some((n) => /is a software GPU/.test(n)));
    await selectBackend("cpu");
  },
});

/** The training's bits are all in; the evaluation and report add nothing to check here. */
const UNTIL = ["--until", "adversarial"];

/** The adversarial entry of the run whose folder ends `stdout`. */
async function adversarialEntry(results: string, stdout: string) {
  const last = stdout.trim().split("\n").at(-1)!;
  const runDir = last.endsWith(".html") ? dirname(last) : last;
  const run = JSON.parse(await Deno.readTextFile(join(runDir, "run.json")));
  const key = run.stages.find((s: { stage: string }) => s.stage === "adversarial").key;
  const dir = join(results, "cache", "adversarial", key);
  const history = JSON.parse(await Deno.readTextFile(join(dir, "history.json")));
  return {
    run,
    key,
    history,
    police: await Deno.readFile(join(dir, "police", "weights.bin")),
    counterfeiter: await Deno.readFile(join(dir, "counterfeiter", "weights.bin")),
    adam: await Deno.readFile(join(dir, "police", "adam_m.npy")),
  };
}

const bits = (e: Awaited<ReturnType<typeof adversarialEntry>>) => ({
  history: e.history,
  police: e.police,
  counterfeiter: e.counterfeiter,
  adam: e.adam,
});

Deno.test({
  name:
    "webgpu end to end: the key names the adapter; killed and resumed, or extended, it gives the bits of one go",
  ignore: !GPU,
  async fn() {
    const adv = { iterations: 40, batchSize: 16, fitBatchSize: 8, checkpointEvery: 5, ema: 0.9 };
    const { cfg, results } = await tinyRun({ adversarial: adv, backend: "webgpu" });
    const once = await cli(["run", cfg, "--results", join(results, "once"), ...UNTIL]);
    assert.equal(once.code, 0, once.stderr);
    assert.match(once.stderr, /^backend: webgpu\/\S+\+fast-cpu\/\S+ \(requested\)/m);
    const a = await adversarialEntry(join(results, "once"), once.stdout);
    const gpu = (await acquireGpu(true))!;
    assert.match(JSON.stringify(a.run), new RegExp(gpu.facts.description.split(" ")[0]));
    // killed after a checkpoint, then resumed
    const killed = join(results, "killed");
    const child = cliSpawn(["run", cfg, "--results", killed, ...UNTIL]);
    const work = join(killed, "cache", "adversarial");
    let checkpointed = false;
    for (let i = 0; i < 600 && !checkpointed; i++) {
      await new Promise((r) => setTimeout(r, 100));
      try {
        for (const e of Deno.readDirSync(work)) {
          if (e.name.startsWith(".work-")) {
            Deno.statSync(join(work, e.name, "state", "seal.json"));
            checkpointed = true;
          }
        }
      } catch { /* not yet */ }
    }
    assert.ok(checkpointed, "the run never reached a checkpoint");
    child.kill("SIGKILL");
    await child.status;
    await child.stdout.cancel();
    await child.stderr.cancel();
    const resumed = await cli(["run", cfg, "--results", killed, ...UNTIL]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /resuming from the checkpoint at iteration \d+/);
    const b = await adversarialEntry(killed, resumed.stdout);
    assert.equal(b.key, a.key);
    assert.deepEqual(bits(b), bits(a));
    // a 25-iteration run extended to 40
    const ext = join(results, "extended");
    const short = await cli([
      "run",
      cfg,
      "--results",
      ext,
      "--set",
      "adversarial.iterations=25",
      ...UNTIL,
    ]);
    assert.equal(short.code, 0, short.stderr);
    const long = await cli(["run", cfg, "--results", ext, ...UNTIL]);
    assert.equal(long.code, 0, long.stderr);
    assert.match(long.stderr, /continuing the cached 25-iteration run/);
    assert.deepEqual(bits(await adversarialEntry(ext, long.stdout)), bits(a));
  },
});

Deno.test({
  name: "webgpu with no adapter: one line naming the fix, exit 1, nothing trained",
  ignore: !GPU,
  async fn() {
    const { cfg, results } = await tinyRun({ backend: "webgpu" });
    // no Vulkan driver, and WebGPU told to use only Vulkan: no adapter
    const r = await cli(["run", cfg, "--results", results], {
      env: { VK_DRIVER_FILES: "/nonexistent/icd.json", DENO_WEBGPU_BACKEND: "vulkan" },
    });
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.trim().split("\n");
    assert.match(
      lines.at(-1)!,
      /backend "webgpu": no WebGPU adapter found; install a Vulkan driver .*, or use --backend fast-cpu$/,
    );
    let trained = false;
    try {
      trained = [...Deno.readDirSync(join(results, "cache", "train_police"))]
        .some((e) => !e.name.startsWith("."));
    } catch { /* no folder: nothing trained */ }
    assert.ok(!trained, "a training entry was sealed without an adapter");
  },
});
