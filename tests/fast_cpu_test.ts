/** Every fast-cpu override against the stock cpu kernel, the SIMD Adam, and the BLAS fallback. */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import { selectBackend } from "../stages/backends/mod.ts";
import { betterCore, loadBlas, openblasVersion, sgemmJs } from "../stages/backends/blas.ts";
import {
  binaryPattern,
  blasLabel,
  FAST_CPU,
  registerFastCpu,
} from "../stages/backends/fast_cpu.ts";
import { SimdAdamArena, simdAvailable } from "../stages/backends/adam_simd.ts";
import { Rng } from "../pipeline/rng.ts";
import { Adam, adamUpdateJs, JsAdamEngine } from "../stages/training/adam.ts";
import { makeGan } from "../stages/training/gan.ts";
import { NO_TRICKS } from "../stages/training/path.ts";
import { initNets, variablesOf } from "../stages/training/nets.ts";
import { streamsFor } from "../stages/training/streams.ts";
import { configOf, ROOT, tinyConfig } from "./helpers.ts";

const info = await registerFastCpu();
await selectBackend("cpu");

/** Runs `f` on a backend and returns its outputs as plain arrays. */
async function on(
  backend: string,
  f: () => tf.Tensor | tf.Tensor[],
): Promise<{ shape: number[]; data: Float32Array }[]> {
  await tf.setBackend(backend);
  const out = tf.tidy(() => {
    const r = f();
    return Array.isArray(r) ? r : [r];
  });
  const res = out.map((t) => ({
    shape: t.shape,
    data: Float32Array.from(t.dataSync() as Float32Array),
  }));
  tf.dispose(out);
  return res;
}

function close(a: Float32Array, b: Float32Array, rtol: number, what: string) {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    const tol = rtol * Math.max(1, Math.abs(b[i]));
    const same = a[i] === b[i] || (Number.isNaN(a[i]) && Number.isNaN(b[i])) ||
      Math.abs(a[i] - b[i]) <= tol;
    assert.ok(same, `${what}: [${i}] ${a[i]} vs ${b[i]}`);
  }
}

async function compare(what: string, f: () => tf.Tensor | tf.Tensor[], rtol = 0) {
  const fast = await on(FAST_CPU, f), stock = await on("cpu", f);
  fast.forEach((t, i) => {
    assert.deepEqual(t.shape, stock[i].shape, `${what}: shape`);
    close(t.data, stock[i].data, rtol, what);
  });
}

const rnd = (shape: number[], seed: number) => {
  const r = new Rng(seed);
  const data = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r.normal());
  return () => tf.tensor(data, shape);
};

Deno.test("backend selection: fast-cpu registers, auto notes what is absent, bad names are errors", async () => {
  assert.ok(tf.findBackend(FAST_CPU));
  assert.ok(info.overridden.includes("BatchMatMul") && info.overridden.includes("Multiply"));
  const auto = await selectBackend("auto");
  assert.equal(auto.name, "fast-cpu");
  assert.ok(auto.notes.some((n) => n.includes("tfjs-node not installed")));
  await assert.rejects(
    () => selectBackend("tensorflow"),
    /backend "tensorflow" is not available.*tfjs-node/,
  );
  await selectBackend("cpu");
});

Deno.test("binary ops match stock on same-shape, scalar, row, column and general broadcasts (exactly)", async () => {
  const shapes: [number[], number[]][] = [
    [[5, 7], [5, 7]],
    [[5, 7], []],
    [[], [5, 7]],
    [[5, 7], [7]],
    [[7], [5, 7]],
    [[5, 7], [1, 7]],
    [[5, 7], [5, 1]],
    [[5, 1], [5, 7]],
    [[2, 3, 4], [4]],
    [[2, 3, 4], [3, 1]], // general broadcast: falls back to stock
    [[0, 4], [4]],
    [[1, 1], [1, 1]],
    [[3, 1], [1, 4]],
  ];
  for (const [sa, sb] of shapes) {
    const a = rnd(sa, 1), b = rnd(sb, 2);
    for (
      const op of ["add", "sub", "mul", "div", "maximum", "minimum", "squaredDifference"] as const
    ) {
      await compare(`${op} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`, () => tf[op](a(), b()));
    }
  }
  assert.equal(binaryPattern([2, 3, 4], [3, 1]), null);
  assert.equal(binaryPattern([5, 7], [7])?.kind, "rowB");
  assert.equal(binaryPattern([5, 7], [5, 1])?.kind, "colB");
});

Deno.test("unary ops and the relu gradient match stock", async () => {
  const x = rnd([6, 9], 3);
  for (
    const op of ["relu", "exp", "neg", "abs", "sigmoid", "square", "tanh", "log1p", "step"] as const
  ) {
    await compare(op, () => (tf[op] as (t: tf.Tensor) => tf.Tensor)(x()), 1e-6);
  }
  await compare("log", () => tf.log(tf.abs(x())), 1e-6);
  await compare("sqrt", () => tf.sqrt(tf.abs(x())), 1e-6);
  await compare("relu grad", () => tf.grad((t: tf.Tensor) => tf.sum(tf.relu(t)))(x()));
  await compare("nan passes", () => tf.relu(tf.tensor1d([NaN, -1, 2])));
});

Deno.test("sum and mean over leading, trailing, all and non-contiguous axes match stock", async () => {
  const x = rnd([4, 5, 6], 4);
  const cases: (number | number[] | undefined)[] = [
    undefined,
    0,
    1,
    2,
    -1,
    [0, 1],
    [1, 2],
    [0, 2],
    [],
  ];
  for (const axis of cases) {
    for (const keepDims of [false, true]) {
      await compare(
        `sum ${JSON.stringify(axis)} ${keepDims}`,
        () => tf.sum(x(), axis, keepDims),
        1e-5,
      );
      await compare(
        `mean ${JSON.stringify(axis)} ${keepDims}`,
        () => tf.mean(x(), axis, keepDims),
        1e-5,
      );
    }
  }
  await compare("sum int32 falls back", () => tf.sum(tf.tensor1d([1, 2, 3], "int32")));
});

Deno.test("matmul matches stock for every transpose, batched and broadcast shapes, empty and size-1 dims", async () => {
  const cases: [number[], number[]][] = [
    [[3, 4], [4, 5]],
    [[1, 4], [4, 1]],
    [[33, 17], [17, 9]],
    [[2, 3, 4], [2, 4, 5]],
    [[2, 3, 4], [4, 5]],
    [[3, 4], [2, 4, 5]],
    [[2, 2, 3, 4], [2, 2, 4, 2]],
    [[0, 4], [4, 3]],
    [[3, 0], [0, 2]],
  ];
  for (const [sa, sb] of cases) {
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        const a = ta ? [...sa.slice(0, -2), sa.at(-1)!, sa.at(-2)!] : sa;
        const b = tb ? [...sb.slice(0, -2), sb.at(-1)!, sb.at(-2)!] : sb;
        await compare(
          `matmul ${a} ${b} ${ta} ${tb}`,
          () => tf.matMul(rnd(a, 5)(), rnd(b, 6)(), ta, tb),
          1e-5,
        );
      }
    }
  }
  // a non-contiguous batch: a sliced, transposed view materialised by tfjs before the kernel
  await compare(
    "sliced",
    () =>
      tf.matMul(
        tf.slice(tf.transpose(rnd([4, 6, 3], 7)(), [0, 2, 1]), [1, 0, 0], [2, 3, 6]),
        rnd([6, 2], 8)(),
      ),
    1e-5,
  );
});

Deno.test("fused matmul with bias and each activation matches stock", async () => {
  for (const activation of ["linear", "relu", "sigmoid", "elu", "leakyrelu"] as const) {
    for (const [ta, tb] of [[false, false], [true, false], [false, true]]) {
      const a = ta ? [6, 5] : [5, 6], b = tb ? [4, 6] : [6, 4];
      await compare(
        `fused ${activation} ${ta} ${tb}`,
        () =>
          tf.fused.matMul({
            a: rnd(a, 1)(),
            b: rnd(b, 2)(),
            bias: rnd([4], 3)(),
            activation,
            transposeA: ta,
            transposeB: tb,
          }),
        1e-5,
      );
    }
  }
});

Deno.test("the TypeScript matmul fallback equals BLAS/stock within float32 rounding", () => {
  const r = new Rng(9);
  for (const [m, n, k] of [[7, 5, 3], [64, 33, 130], [1, 1, 1]]) {
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        const a = Float32Array.from({ length: m * k }, () => r.normal());
        const b = Float32Array.from({ length: k * n }, () => r.normal());
        const c1 = new Float32Array(m * n), c2 = new Float32Array(m * n);
        sgemmJs(ta, tb, m, n, k, a, ta ? m : k, b, tb ? k : n, c1, n);
        // a plain triple loop as the reference
        for (let i = 0; i < m; i++) {
          for (let j = 0; j < n; j++) {
            let s = 0;
            for (let p = 0; p < k; p++) {
              s += (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
            }
            c2[i * n + j] = s;
          }
        }
        close(c1, c2, 1e-5, `sgemmJs ${m}x${n}x${k} ${ta} ${tb}`);
      }
    }
  }
  assert.equal(loadBlas({ allowFfi: false }).kind, "js");
});

Deno.test("with no BLAS library the backend still trains (subprocess with GAN_BLAS=off)", async () => {
  const code = `
    import * as tf from "@tensorflow/tfjs-core";
    import { selectBackend } from "./stages/backends/mod.ts";
    const b = await selectBackend("fast-cpu");
    const y = tf.matMul(tf.ones([3, 4]), tf.ones([4, 2]));
    console.log(JSON.stringify({ backend: b.runtime.facts.backend, notes: b.notes, y: Array.from(y.dataSync()) }));`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", code],
    cwd: ROOT,
    env: { GAN_BLAS: "off", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!;
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const r = JSON.parse(text);
  assert.equal(r.backend, "fast-cpu/js");
  assert.match(r.notes.join(" "), /matmul in TypeScript/);
  assert.deepEqual(r.y, [4, 4, 4, 4, 4, 4]);
});

Deno.test("SIMD Adam equals tf.train.adam (tfjs form) within 1e-6 after several steps", async () => {
  assert.ok(simdAvailable(), "WebAssembly SIMD is not available here");
  await tf.setBackend("cpu");
  const sizes = [37, 4, 1];
  const init = sizes.map((n, i) => Float32Array.from({ length: n }, (_, k) => Math.sin(k + i)));
  const grads = (step: number) =>
    sizes.map((n, i) => Float32Array.from({ length: n }, (_, k) => Math.cos(k * (step + 1) + i)));
  const opts = {
    learningRate: 0.01,
    beta1: 0.9,
    beta2: 0.999,
    epsilon: 1e-7,
    form: "tfjs" as const,
  };
  // reference: tf.train.adam on stock cpu
  const vars = init.map((a) => tf.variable(tf.tensor1d(a)));
  const ref = tf.train.adam(opts.learningRate, opts.beta1, opts.beta2, opts.epsilon);
  const arena = new SimdAdamArena(sizes);
  init.forEach((a, i) => arena.params[i].set(a));
  for (let s = 0; s < 6; s++) {
    const g = grads(s);
    ref.applyGradients(vars.map((v, i) => ({ name: v.name, tensor: tf.tensor1d(g[i]) })));
    g.forEach((a, i) => arena.g[i].set(a));
    const c = Adam.consts(opts, s + 1);
    sizes.forEach((_, i) => assert.ok(arena.step(i, c)));
  }
  vars.forEach((v, i) => close(arena.params[i], v.dataSync() as Float32Array, 1e-6, `param ${i}`));
});

Deno.test("Adam in the Keras form equals a plain reference implementation; NaN is reported", () => {
  const opts = {
    learningRate: 0.001,
    beta1: 0.9,
    beta2: 0.999,
    epsilon: 1e-7,
    form: "keras" as const,
  };
  const n = 23;
  const arena = new SimdAdamArena([n]);
  let p = Array.from({ length: n }, (_, k) => Math.sin(k)),
    m = new Array(n).fill(0),
    v = new Array(n).fill(0);
  arena.params[0].set(p);
  for (let t = 1; t <= 5; t++) {
    const g = Array.from({ length: n }, (_, k) => Math.cos(k * t) * 1e-4);
    // Keras (TF): lr_t = lr * sqrt(1-b2^t)/(1-b1^t); p -= lr_t * m / (sqrt(v) + eps)
    m = m.map((mi, k) => 0.9 * mi + 0.1 * g[k]);
    v = v.map((vi, k) => 0.999 * vi + 0.001 * g[k] * g[k]);
    const lrT = 0.001 * Math.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t);
    p = p.map((pi, k) => pi - lrT * m[k] / (Math.sqrt(v[k]) + 1e-7));
    arena.g[0].set(g);
    arena.step(0, Adam.consts(opts, t));
  }
  close(arena.params[0], Float32Array.from(p), 1e-6, "keras form");
  // the two forms differ where sqrt(v) is near epsilon: here, by design
  const js = new Float32Array(1), gz = new Float32Array([1e-8]);
  adamUpdateJs(js, gz, new Float32Array(1), new Float32Array(1), Adam.consts(opts, 1));
  const jt = new Float32Array(1);
  adamUpdateJs(
    jt,
    gz,
    new Float32Array(1),
    new Float32Array(1),
    Adam.consts({ ...opts, form: "tfjs" }, 1),
  );
  assert.notEqual(js[0], jt[0]);
  arena.g[0].fill(NaN);
  assert.equal(arena.step(0, Adam.consts(opts, 6)), false);
  const e = new JsAdamEngine([tf.variable(tf.tensor1d([1]))]);
  assert.equal(e.step([tf.tensor1d([NaN])], Adam.consts(opts, 1)), false);
});

Deno.test("a short training run on fast-cpu, wasm and stock cpu agree to float32 rounding", async () => {
  const dir = await Deno.makeTempDir();
  const cfg = await configOf(
    dir,
    tinyConfig({ trainImages: "a", trainLabels: "b", testImages: "c", testLabels: "d" }, {
      model: {
        noiseDim: 4,
        counterfeiter: { hidden: [32, 16] },
        police: { hidden: [32, 16], dropout: 0.3 },
      },
    }),
  );
  const run = async (backend: string) => {
    await tf.setBackend(backend);
    const { g, d } = initNets(cfg, 36, new Rng(1), new Rng(2));
    // autodiff everywhere: this compares the backends' kernels, not the paths
    const { path } = makeGan(cfg, g, d, streamsFor(cfg, "adversarial"), { path: "autodiff" });
    const real = path.upload(new Rng(3).uniforms(64 * 36), 36);
    const fake = path.upload(new Rng(4).uniforms(64 * 36), 36);
    const losses = [];
    for (let i = 0; i < 3; i++) {
      const police = { batchSize: 16, tricks: NO_TRICKS, rateFactor: 1 };
      losses.push((await path.fitPolice(real, fake, police)).loss);
      const noise = path.upload(new Rng(5 + i).normals(64 * 4), 4);
      const counterfeiter = {
        batchSize: 16,
        policeDropout: false,
        instanceNoise: 0,
        rateFactor: 1,
      };
      losses.push((await path.fitCounterfeiter(noise, counterfeiter)).loss);
    }
    const weights = variablesOf(g).concat(variablesOf(d)).map((v) =>
      Float32Array.from(v.dataSync() as Float32Array)
    );
    return { losses: Float32Array.from(losses), weights };
  };
  await selectBackend("wasm"); // registers it
  const fast = await run(FAST_CPU), wasm = await run("wasm"), stock = await run("cpu");
  close(fast.losses, stock.losses, 1e-4, "losses");
  fast.weights.forEach((w, i) => close(w, stock.weights[i], 1e-4, `weights ${i}`));
  close(wasm.losses, stock.losses, 1e-4, "wasm losses");
  await selectBackend("cpu");
});

Deno.test("tensor memory stays flat across iterations on fast-cpu", async () => {
  await tf.setBackend(FAST_CPU);
  const dir = await Deno.makeTempDir();
  const cfg = await configOf(
    dir,
    tinyConfig({ trainImages: "a", trainLabels: "b", testImages: "c", testLabels: "d" }),
  );
  const { g, d } = initNets(cfg, 36, new Rng(1), new Rng(2));
  const gan = makeGan(cfg, g, d, streamsFor(cfg, "adversarial"));
  const { adversarialIterations } = await import("../stages/training/loop.ts");
  const counts: number[] = [], bytes: number[] = [];
  await adversarialIterations(gan, cfg.adversarial, {
    train: new Rng(1).uniforms(100 * 36),
    dim: 36,
    to: 100,
    history: [],
    onIteration: () => {
      counts.push(tf.memory().numTensors);
      bytes.push(tf.memory().numBytes);
    },
  });
  assert.equal(new Set(counts).size, 1, `numTensors changed: ${[...new Set(counts)]}`);
  assert.equal(new Set(bytes).size, 1);
  await tf.setBackend("cpu");
});

Deno.test("the wasm backend loads from the package's own .wasm files", async () => {
  const b = await selectBackend("wasm");
  assert.equal(b.name, "wasm");
  const y = tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]]));
  assert.deepEqual([...y.dataSync()], [11]);
  await selectBackend("cpu");
});

Deno.test("the fused relu gradient and step equal tfjs's, NaN, infinities and signed zeros included", async () => {
  const xs = [-2, -0, 0, 3, NaN, Infinity, -Infinity, 1e-30, -1e-30, 0.5];
  const dys = [1, -1, 2, -3, 4, -5, 6, -7, Infinity, NaN];
  const grad = () => {
    const x = tf.tensor1d(xs), dy = tf.tensor1d(dys);
    return tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.relu(t), dy)))(x);
  };
  const fast = await on(FAST_CPU, grad), stock = await on("cpu", grad);
  fast[0].data.forEach((v, i) =>
    assert.ok(Object.is(v, stock[0].data[i]), `[${i}] ${v} vs ${stock[0].data[i]}`)
  );
  for (const alpha of [0, 0.3]) {
    const f = await on(FAST_CPU, () => tf.step(tf.tensor1d(xs), alpha));
    const s = await on("cpu", () => tf.step(tf.tensor1d(xs), alpha));
    f[0].data.forEach((v, i) =>
      assert.ok(Object.is(v, s[0].data[i]), `step ${alpha} [${i}] ${v} vs ${s[0].data[i]}`)
    );
  }
  const rf = await on(FAST_CPU, () => tf.relu(tf.tensor1d(xs)));
  const rs = await on("cpu", () => tf.relu(tf.tensor1d(xs)));
  close(rf[0].data, rs[0].data, 0, "relu"); // equal as numbers (ours gives +0 for -0)
});

Deno.test("OpenBLAS's release, thread count and CPU kernel are part of the backend fact that goes into cache keys", async () => {
  const code = `
    import { selectBackend } from "./stages/backends/mod.ts";
    const b = await selectBackend("fast-cpu");
    console.log(JSON.stringify({ backend: b.runtime.facts.backend, notes: b.notes }));`;
  const keys = [];
  for (const [threads, core] of [["1", "Haswell"], ["2", "Haswell"], ["2", "Prescott"]]) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--ext=ts", code],
      cwd: ROOT,
      env: { OPENBLAS_NUM_THREADS: threads, OPENBLAS_CORETYPE: core, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const r = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
    if (r.notes.some((n: string) => n.includes("matmul in TypeScript"))) {
      assert.equal(r.backend, "fast-cpu/js"); // no BLAS here: nothing threaded to record
    } else {
      // an x86-64 OpenBLAS with every kernel (Debian's) honours OPENBLAS_CORETYPE, and names
      // its release (releases round differently with the same kernels)
      const release = loadBlas().version;
      assert.match(release ?? "", /^\d+\.\d+\.\d+/);
      assert.equal(r.backend, `fast-cpu/openblas-${release}-${core}-t${threads}`);
    }
    keys.push(r.backend);
  }
  assert.equal(new Set(keys).size, keys[0] === "fast-cpu/js" ? 1 : 3);
});

Deno.test("the matmul's fact names OpenBLAS's release where the library gives one", () => {
  assert.equal(
    openblasVersion("OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Haswell"),
    "0.3.21",
  );
  assert.equal(openblasVersion("OpenBLAS 0.3.30.dev DYNAMIC_ARCH"), "0.3.30.dev");
  assert.equal(openblasVersion("OpenBLAS 0.3.29 NO_LAPACK MAX_THREADS=2"), "0.3.29");
  assert.equal(openblasVersion("a library of some other name 1.2"), null);
  const blas = { kind: "blas" as const, core: "Haswell", threads: 2 };
  assert.equal(blasLabel({ ...blas, version: "0.3.21" }), "openblas-0.3.21-Haswell-t2");
  assert.equal(blasLabel({ ...blas, version: "0.3.29" }), "openblas-0.3.29-Haswell-t2");
  // a library that names no release keeps the older fact rather than inventing one
  assert.equal(blasLabel({ ...blas, version: null }), "openblas-Haswell-t2");
  assert.equal(blasLabel({ ...blas, version: "0.3 weird/x" }), "openblas-0.3_weird_x-Haswell-t2");
  assert.equal(blasLabel({ kind: "js", core: null, threads: null, version: null }), "js");
});

Deno.test("OpenBLAS's pick is replaced by the fastest family the CPU's flags allow", () => {
  const avx512 = new Set([
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512dq",
    "avx512vl",
    "avx512cd",
  ]);
  assert.equal(betterCore("Prescott", avx512), "SkylakeX");
  assert.equal(betterCore("Nehalem", new Set(["avx2", "fma"])), "Haswell");
  assert.equal(betterCore("Prescott", new Set(["sse3"])), null); // a CPU that old keeps it
  // an AVX2 pick on an AVX-512 CPU (Zen 1-3 kernels on a newer AMD, say): SkylakeX
  assert.equal(betterCore("Haswell", avx512), "SkylakeX");
  assert.equal(betterCore("Zen", avx512), "SkylakeX");
  assert.equal(betterCore("Zen", new Set(["avx2", "fma"])), null); // Zen 1-3: no AVX-512
  assert.equal(betterCore("SkylakeX", avx512), null);
  assert.equal(betterCore("Cooperlake", avx512), null); // AVX-512 already
  // a CPU missing one of the five subsets keeps its AVX2 kernels
  assert.equal(betterCore("Haswell", new Set([...avx512].filter((f) => f !== "avx512vl"))), null);
});
