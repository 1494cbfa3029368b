/** The SIMD elementwise kernels give the bits of the JS loops they replace, specials included. */
import assert from "node:assert/strict";
import { DenseKernels, denseModuleBytes } from "../stages/backends/dense_simd.ts";
import { Rng } from "../pipeline/rng.ts";

const f = Math.fround;
const available = WebAssembly.validate(denseModuleBytes() as BufferSource);

/** Random floats with every special a relu step can meet mixed in. */
function values(n: number, seed: number): Float32Array {
  const rng = new Rng(seed, 7);
  const specials = [0, -0, Infinity, -Infinity, NaN, 1e-45, -1e-45, 1e-39, -1e-39, 3e38, -3e38];
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = rng.uniform() < 0.2
      ? specials[Math.floor(rng.uniform() * specials.length)]
      : (rng.uniform() - 0.5) * 4;
  }
  return out;
}

/** The index of the first value whose bits differ (NaNs count as equal), or -1. */
function firstDifference(a: Float32Array, b: Float32Array): number {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < a.length; i++) {
    if (ua[i] !== ub[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return i;
  }
  return -1;
}

function sameBits(simd: Float32Array, js: Float32Array, what: string) {
  const i = firstDifference(simd, js);
  const bits = (x: number) => `0x${new Uint32Array(new Float32Array([x]).buffer)[0].toString(16)}`;
  assert.equal(i, -1, `${what}: value ${i} is ${bits(simd[i])} in SIMD, ${bits(js[i])} in JS`);
}

const rows = 7, cols = 24, size = rows * cols;

function setup() {
  const k = DenseKernels.create(DenseKernels.bytesFor(size) * 8)!;
  const z = k.alloc(size), b = k.alloc(cols), m = k.alloc(size), h = k.alloc(size);
  const d = k.alloc(size), dz = k.alloc(size), out = k.alloc(cols);
  z.set(values(size, 1));
  b.set(values(cols, 2));
  // the cases the relus differ on: -0 + -0 (a -0 pre-activation), -inf, NaN, a denormal
  b[0] = -0;
  z.set([-0], 0);
  z.set([-Infinity], cols);
  z.set([NaN], 2 * cols);
  z.set([1e-39], 3 * cols);
  d.set(values(size, 3));
  const rng = new Rng(4, 1);
  rng.fillMask(m, Math.ceil(0.3 * 4294967296), 1 / 0.7);
  return { k, z, b, m, h, d, dz, out };
}

Deno.test({
  name: "SIMD bias add and both relus give the JS loops' bits",
  ignore: !available,
  fn() {
    const { k, z, b, m, h } = setup();
    const z0 = z.slice();
    const js = new Float32Array(size), jsH = new Float32Array(size);
    for (let o = 0; o < size; o++) js[o] = f(z0[o] + b[o % cols]);
    k.addBias(z, b, rows, cols);
    sameBits(z, js, "addBias");

    z.set(z0);
    for (let o = 0; o < size; o++) {
      const v = f(z0[o] + b[o % cols]);
      js[o] = v < 0 ? 0 : v;
    }
    k.reluInfer(z, b, rows, cols);
    sameBits(z, js, "reluInfer");

    z.set(z0);
    for (let o = 0; o < size; o++) {
      const v = f(z0[o] + b[o % cols]);
      js[o] = v === -Infinity ? 0 : (v + Math.abs(v)) * 0.5;
      jsH[o] = js[o] * m[o];
    }
    k.reluTrain(z, b, rows, cols);
    sameBits(z, js, "reluTrain");
    z.set(z0);
    k.reluTrainMask(z, b, m, h, rows, cols);
    sameBits(z, js, "reluTrainMask (activation)");
    sameBits(h, jsH, "reluTrainMask (masked)");
    // the -0 pre-activation stays -0 at inference and is +0 in training
    assert.ok(Object.is(js[0], 0) && Object.is(f(z0[0] + b[0]), -0));
  },
});

Deno.test({
  name: "SIMD relu gradients and float64 column sums give the JS loops' bits",
  ignore: !available,
  fn() {
    const { k, z, m, d, dz, out } = setup();
    const js = new Float32Array(size);
    for (let o = 0; o < size; o++) js[o] = f(d[o] * m[o]) * +(z[o] > 0);
    k.dzMask(d, m, z, dz, size);
    sameBits(dz, js, "dzMask");
    for (let o = 0; o < size; o++) js[o] = d[o] * +(z[o] > 0);
    k.dzPlain(d, z, dz, size);
    sameBits(dz, js, "dzPlain");

    // finite values that cancel: the float64 order shows in the float32 result
    const x = d.map((v, o) => Number.isFinite(v) ? v * 10 ** (o % 9) : 1);
    d.set(x);
    const acc = new Float64Array(cols), jsOut = new Float32Array(cols);
    for (let r = 0, o = 0; r < rows; r++) for (let j = 0; j < cols; j++, o++) acc[j] += d[o];
    for (let j = 0; j < cols; j++) jsOut[j] = acc[j];
    k.colSums(d, out, rows, cols);
    sameBits(out, jsOut, "colSums");
    // a float32 running sum would differ somewhere: the test can tell the two apart
    const f32 = new Float32Array(cols);
    for (let r = 0, o = 0; r < rows; r++) {
      for (let j = 0; j < cols; j++, o++) f32[j] = f32[j] + d[o];
    }
    assert.notEqual(firstDifference(out, f32), -1);
  },
});

Deno.test({
  name: "DenseKernels refuses arrays past its memory, and memory past 2 GiB (JS loops then)",
  ignore: !available,
  fn() {
    const k = DenseKernels.create(64)!;
    k.alloc(16);
    assert.throws(() => k.alloc(1), /do not fit/);
    assert.equal(DenseKernels.create(2 ** 31), null);
  },
});
