/** The SIMD Adam on two threads: the same bits as on one, NaN and denormals included. */
import assert from "node:assert/strict";
import { sharedModule, SimdAdamArena, simdAvailable } from "../stages/backends/adam_simd.ts";
import {
  type AdamHelper,
  adamHelper,
  adamThreads,
  SPLIT_MIN,
} from "../stages/backends/adam_threads.ts";
import { denormalsFlushInJs, fenvLayout, flushDenormals } from "../stages/backends/ftz.ts";
import { Adam } from "../stages/training/adam.ts";
import { Rng } from "../pipeline/rng.ts";

const OPTS = {
  learningRate: 0.01,
  beta1: 0.9,
  beta2: 0.999,
  epsilon: 1e-7,
  form: "keras" as const,
};

/**
 * A test of the threaded Adam, given the process's helper once its worker is up (the worker
 * outlives the test: it is the process's, unref'd). Skipped where Adam keeps to one thread.
 */
function threadedTest(
  name: string,
  fn: (helper: AdamHelper) => void,
  ignore = false,
): void {
  Deno.test({
    name: `threaded Adam: ${name}`,
    ignore: ignore || !simdAvailable() || adamThreads() < 2,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const h = adamHelper(sharedModule()!);
      assert.ok(h, "no Adam helper: GAN_ADAM_THREADS=1 or one core?");
      fn(await h.whenUsable());
    },
  });
}

/** Two arenas (one threaded) with the same values. */
function pair(sizes: number[], helper: AdamHelper) {
  const one = new SimdAdamArena(sizes), two = new SimdAdamArena(sizes, helper);
  const rng = new Rng(7);
  sizes.forEach((n, i) => {
    const p = rng.normals(n);
    one.params[i].set(p);
    two.params[i].set(p);
  });
  return { one, two };
}

/** The stored bits (read as floats, a denormal would read as 0 under DAZ). */
const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length).slice();

/** Asserts equal bits, naming the first difference (a diff of a million values takes minutes). */
function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  const x = bits(a), y = bits(b);
  assert.equal(x.length, y.length, `${what}: lengths`);
  const at = x.findIndex((v, i) => v !== y[i]);
  assert.equal(at, -1, `${what}: first difference at ${at}`);
}

threadedTest(
  "the same bits as one thread over several steps, every size split or not",
  (helper) => {
    // split with and without a remainder of 4, a large odd one, and biases kept on the main thread
    const sizes = [SPLIT_MIN, 784 * 1024 + 3, 1024, SPLIT_MIN - 1, 3, 40_001];
    const { one, two } = pair(sizes, helper);
    const rng = new Rng(11);
    for (let t = 1; t <= 5; t++) {
      sizes.forEach((n, i) => {
        const g = rng.normals(n).map((x) => x * 10 ** -(t + i % 3));
        one.g[i].set(g);
        two.g[i].set(g);
      });
      const c = Adam.consts(OPTS, t);
      assert.equal(two.stepAll(c), true);
      assert.equal(one.stepAll(c), true);
    }
    sizes.forEach((_, i) => {
      for (const k of ["params", "m", "v"] as const) {
        sameBits(two[k][i], one[k][i], `${k}[${i}] (size ${sizes[i]})`);
      }
    });
  },
);

threadedTest("a NaN in the worker's half is reported", (helper) => {
  const n = 4 * SPLIT_MIN;
  const { two } = pair([n], helper);
  two.g[0][n - 5] = NaN; // past the middle: the worker's part
  assert.equal(two.stepAll(Adam.consts(OPTS, 1)), false);
  assert.ok(Number.isNaN(two.params[0][n - 5]));
  assert.ok(Number.isFinite(two.params[0][0]));
});

threadedTest("the worker flushes denormals as the main thread does", (helper) => {
  const n = 2 * SPLIT_MIN;
  const before = denormalsFlushInJs();
  try {
    for (const flush of [true, false]) {
      flushDenormals(flush);
      const { two } = pair([n], helper);
      two.g[0].fill(1e-37); // a normal float; (1 - b1) * g = 1e-38 is denormal
      two.stepAll({ lrT: 0, b1: 0.9, b2: 0.999, eps: 1e-7, corr2: 1 });
      const m = bits(two.m[0]), first = m[0], last = m[n - 1];
      assert.equal(last, first, `flush ${flush}: the worker's half differs`);
      assert.equal(first === 0, flush, `flush ${flush}: m's bits ${first}`);
    }
  } finally {
    flushDenormals(before);
  }
}, typeof fenvLayout() === "string");

Deno.test("GAN_ADAM_THREADS: 1 or 2, else a clear error", () => {
  assert.equal(adamThreads({ GAN_ADAM_THREADS: "2" }, 1), 2);
  assert.equal(adamThreads({ GAN_ADAM_THREADS: "" }, 4), 2);
  // a sweep point given one BLAS thread keeps Adam to one too, unless told otherwise
  assert.equal(adamThreads({ OPENBLAS_NUM_THREADS: "1" }, 4), 1);
  assert.equal(adamThreads({ OPENBLAS_NUM_THREADS: "2" }, 4), 2);
  assert.equal(adamThreads({ OPENBLAS_NUM_THREADS: "1", GAN_ADAM_THREADS: "2" }, 4), 2);
  assert.throws(
    () => adamThreads({ GAN_ADAM_THREADS: "four" }, 4),
    /GAN_ADAM_THREADS=four: expected 1 or 2/,
  );
});

Deno.test({
  name: "an arena with nothing large enough to split asks for no worker thread",
  ignore: !simdAvailable(),
  fn() {
    let asked = 0;
    const ask = () => (asked++, null);
    new SimdAdamArena([SPLIT_MIN - 1, 4, 1], ask);
    assert.equal(asked, 0);
    new SimdAdamArena([SPLIT_MIN, 4], ask);
    assert.equal(asked, 1);
  },
});
