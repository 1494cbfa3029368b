/**
 * The WGSL kernels of the `webgpu` training path. Every kernel sees the same three bindings:
 * the arena (one f32 storage buffer holding weights, gradients, Adam's moments, the weight
 * average, activations and batches, addressed by offsets), a read-only u32 buffer of the
 * host's per-submit integers (shuffled row indices, dropout mask bits), and a 256-byte
 * uniform slot per dispatch (dynamic offset) holding that dispatch's offsets and sizes. One
 * layout for every kernel means one bind group for a whole submit.
 *
 * The fused shapes are the ones the step needs: a tiled matmul whose epilogue adds the bias,
 * applies the activation and the dropout mask (forward), or multiplies by the previous
 * layer's mask and activation derivative (backward); column sums for the bias gradients; the
 * loss and its gradient; Adam over a whole net in one pass; the weight average. Every sum
 * runs in a fixed order in one thread, so the same inputs give the same bits run to run.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ACT, matmulSource } from "./gpu_kernels.ts";
 * assert.match(matmulSource(false, true), /fn main/);
 * assert.equal(ACT.relu, 1);
 * ```
 */
import type { Activation } from "../schema.ts";

/** The activation codes the kernels take. */
export const ACT: Record<Activation | "linear", number> = {
  linear: 0,
  relu: 1,
  leakyRelu: 2,
  tanh: 3,
  sigmoid: 4,
  elu: 5,
};

/** Matmul epilogues. */
export const EPILOGUE = { plain: 0, forward: 1, backward: 2 } as const;

/** Loss kernel forms. */
export const LOSS = { bceLabels: 0, bceOnes: 1, leastSquares: 2, hinge: 3 } as const;

/** Bytes of one dispatch's uniform slot (the largest alignment WebGPU may ask for). */
export const SLOT_BYTES = 256;

const HEADER = /* wgsl */ `
struct Slot { w: array<vec4<u32>, 16> }
@group(0) @binding(0) var<storage, read_write> A: array<f32>;
@group(0) @binding(1) var<storage, read> I: array<u32>;
@group(0) @binding(2) var<uniform> S: Slot;
fn u(i: u32) -> u32 { return S.w[i / 4u][i % 4u]; }
fn uf(i: u32) -> f32 { return bitcast<f32>(u(i)); }
fn bit(word0: u32, k: u32) -> bool { return ((I[word0 + k / 32u] >> (k % 32u)) & 1u) == 1u; }
fn activate(v: f32, act: u32, slope: f32) -> f32 {
  switch act {
    case 1u: { return select(v, 0.0, v < 0.0); }
    case 2u: { return select(v, slope * v, v < 0.0); }
    case 3u: { return tanh(v); }
    case 4u: { return 1.0 / (1.0 + exp(-v)); }
    case 5u: { return select(v, exp(v) - 1.0, v < 0.0); }
    default: { return v; }
  }
}
// the gradient through an activation, from its output a
fn through(d: f32, a: f32, act: u32, slope: f32) -> f32 {
  switch act {
    case 1u: { return select(0.0, d, a > 0.0); }
    case 2u: { return select(d * slope, d, a > 0.0); }
    case 3u: { return d * (1.0 - a * a); }
    case 4u: { return d * (a * (1.0 - a)); }
    case 5u: { return select(d * (a + 1.0), d, a > 0.0); }
    default: { return d; }
  }
}
`;

/**
 * C = op(A) op(B) over arena offsets, 64x64 output tiles, 4x4 outputs a thread. Slot words:
 * 0 M, 1 N, 2 K, 3 aOff, 4 bOff, 5 cOff, 6 epilogue, 7 act, 8 slope, 9 biasOff, 10 hasMask,
 * 11 maskWord, 12 scale, 13 hOff, 14 prevOff (the previous layer's activations, backward).
 * A is [M,K] ([K,M] when transposed), B is [K,N] ([N,K] when transposed), row-major.
 *
 * A thread's 16 sums live in four vec4 registers and the tiles are read as vec4s, each row of
 * the sums written out by name: an `array<f32, 16>` indexed in loops (the first version) was
 * kept in memory, not registers, by lavapipe's compiler and ran 3x slower there (32x784x1024:
 * 73 ms against 23 ms), with the same sums in the same order.
 */
export function matmulSource(transA: boolean, transB: boolean): string {
  // tile loads walk memory contiguously in the stored layout
  const loadA = transA
    ? "let kk = idx / 64u; let mm = idx % 64u; let src = aOff + (k0 + kk) * M + row0 + mm;"
    : "let mm = idx / 16u; let kk = idx % 16u; let src = aOff + (row0 + mm) * K + k0 + kk;";
  const loadB = transB
    ? "let nn = idx / 16u; let kk = idx % 16u; let src = bOff + (col0 + nn) * K + k0 + kk;"
    : "let kk = idx / 64u; let nn = idx % 64u; let src = bOff + (k0 + kk) * N + col0 + nn;";
  const store = (r: number) => /* wgsl */ `
  if (row0 + lid.y * 4u + ${r}u < M) { store(row0 + lid.y * 4u + ${r}u, col0 + lid.x * 4u, acc${r}); }`;
  return HEADER + /* wgsl */ `
var<workgroup> As: array<vec4<f32>, 256>;
var<workgroup> Bs: array<vec4<f32>, 256>;
// one row of a thread's outputs, through the epilogue
fn store(i: u32, j0: u32, sums: vec4<f32>) {
  let M = u(0u); let N = u(1u); let cOff = u(5u);
  let mode = u(6u); let act = u(7u); let slope = uf(8u);
  for (var c = 0u; c < 4u; c++) {
    let j = j0 + c;
    if (j >= N) { return; }
    let o = i * N + j;
    var s = sums[c];
    if (mode == 1u) {
      let a = activate(s + A[u(9u) + j], act, slope);
      A[cOff + o] = a;
      if (u(10u) == 1u) { A[u(13u) + o] = a * select(0.0, uf(12u), bit(u(11u), o)); }
    } else if (mode == 2u) {
      if (u(10u) == 1u) { s = s * select(0.0, uf(12u), bit(u(11u), o)); }
      A[cOff + o] = through(s, A[u(14u) + o], act, slope);
    } else {
      A[cOff + o] = s;
    }
  }
}
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let M = u(0u); let N = u(1u); let K = u(2u);
  let aOff = u(3u); let bOff = u(4u);
  let row0 = wg.y * 64u; let col0 = wg.x * 64u;
  var acc0 = vec4<f32>(0.0); var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0); var acc3 = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < K; k0 += 16u) {
    for (var e = 0u; e < 4u; e++) {
      let idx = li + e * 256u;
      {
        ${loadA}
        var v = 0.0;
        if (row0 + mm < M && k0 + kk < K) { v = A[src]; }
        As[kk * 16u + mm / 4u][mm % 4u] = v;
      }
      {
        ${loadB}
        var v = 0.0;
        if (col0 + nn < N && k0 + kk < K) { v = A[src]; }
        Bs[kk * 16u + nn / 4u][nn % 4u] = v;
      }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      let a = As[kk * 16u + lid.y];
      let b = Bs[kk * 16u + lid.x];
      acc0 = acc0 + a.x * b;
      acc1 = acc1 + a.y * b;
      acc2 = acc2 + a.z * b;
      acc3 = acc3 + a.w * b;
    }
    workgroupBarrier();
  }${[0, 1, 2, 3].map(store).join("")}
}`;
}

/** Bias gradients: out[j] = sum over rows of dz[r, j]. Words: 0 n, 1 N, 2 dzOff, 3 outOff. */
export const COLSUM = HEADER + /* wgsl */ `
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = u(0u); let N = u(1u); let j = gid.x;
  if (j >= N) { return; }
  var s = 0.0;
  for (var r = 0u; r < n; r++) { s += A[u(2u) + r * N + j]; }
  A[u(3u) + j] = s;
}`;

/**
 * A minibatch's rows by index: row r is row I[idxWord + r] of the first source (below
 * `split`) or of the second, plus `std` times the same row of the noise. Words: 0 n, 1 dim,
 * 2 idxWord, 3 split, 4 aOff, 5 bOff, 6 outOff, 7 std, 8 noiseOff.
 */
export const GATHER = HEADER + /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let n = u(0u); let dim = u(1u); let split = u(3u); let sd = uf(7u);
  let total = n * dim;
  for (var i = gid.x; i < total; i += nw.x * 256u) {
    let r = i / dim; let c = i % dim;
    let row = I[u(2u) + r];
    var v: f32;
    if (row < split) { v = A[u(4u) + row * dim + c]; } else { v = A[u(5u) + (row - split) * dim + c]; }
    if (sd != 0.0) { v = v + sd * A[u(8u) + row * dim + c]; }
    A[u(6u) + i] = v;
  }
}`;

/** out = x + std * e over `count` numbers. Words: 0 count, 1 xOff, 2 eOff, 3 outOff, 4 std. */
export const ADD_NOISE = HEADER + /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let sd = uf(4u);
  for (var i = gid.x; i < u(0u); i += nw.x * 256u) { A[u(3u) + i] = A[u(1u) + i] + sd * A[u(2u) + i]; }
}`;

/**
 * A minibatch's loss from the police's logits and its gradient, in one thread so the sum has
 * one order. Words: 0 n, 1 form, 2 logitsOff, 3 dlOff, 4 labelsOff, 5 idxWord, 6 resOff.
 */
export const LOSS_KERNEL = HEADER + /* wgsl */ `
fn log1p(x: f32) -> f32 { let w = 1.0 + x; if (w == 1.0) { return x; } return log(w) * (x / (w - 1.0)); }
@compute @workgroup_size(1)
fn main() {
  let n = u(0u); let form = u(1u);
  let g0 = 1.0 / f32(n);
  var sum = 0.0;
  for (var i = 0u; i < n; i++) {
    let l = A[u(2u) + i];
    var d = 0.0;
    if (form <= 1u) {
      var y = 1.0;
      if (form == 0u) { y = A[u(4u) + I[u(5u) + i]]; }
      let absL = abs(l);
      let e = exp(-absL);
      sum += ((l + absL) * 0.5 - l * y) + log1p(e);
      let dexp = (g0 / (e + 1.0)) * e;
      d = (select(dexp, -dexp, l > 0.0) + (-g0 * y)) + select(0.0, g0, l > 0.0);
    } else if (form == 2u) {
      let p = 1.0 / (1.0 + exp(-l));
      sum += (p - 1.0) * (p - 1.0);
      d = (2.0 * (p - 1.0) * p * (1.0 - p)) * g0;
    } else {
      if (l < 1.0) { sum += 1.0 - l; d = -g0; }
    }
    A[u(3u) + i] = d;
  }
  A[u(6u)] = sum / f32(n);
}`;

/** The mean of sigmoid(logits) over rows, in one thread. Words: 0 n, 1 logitsOff, 2 resOff. */
export const MEAN_SIGMOID = HEADER + /* wgsl */ `
@compute @workgroup_size(1)
fn main() {
  let n = u(0u);
  var s = 0.0;
  for (var i = 0u; i < n; i++) { s += 1.0 / (1.0 + exp(-A[u(1u) + i])); }
  A[u(2u)] = s / f32(n);
}`;

/**
 * Adam over a whole net (its parameters, gradients and moments each contiguous, in the same
 * order): `p -= lrT m / (sqrt(v corr2) + eps)`; a parameter that is not finite sets the flag.
 * Words: 0 count, 1 pOff, 2 gOff, 3 mOff, 4 vOff, 5 lrT, 6 b1, 7 b2, 8 eps, 9 corr2, 10 flagOff.
 */
export const ADAM = HEADER + /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let lrT = uf(5u); let b1 = uf(6u); let b2 = uf(7u); let eps = uf(8u); let corr2 = uf(9u);
  let ob1 = 1.0 - b1; let ob2 = 1.0 - b2;
  for (var i = gid.x; i < u(0u); i += nw.x * 256u) {
    let g = A[u(2u) + i];
    let m = b1 * A[u(3u) + i] + ob1 * g;
    let v = b2 * A[u(4u) + i] + ob2 * g * g;
    A[u(3u) + i] = m;
    A[u(4u) + i] = v;
    let p = A[u(1u) + i] - (lrT * m) / (sqrt(v * corr2) + eps);
    A[u(1u) + i] = p;
    if ((bitcast<u32>(p) & 0x7f800000u) == 0x7f800000u) { A[u(10u)] = 1.0; }
  }
}`;

/** The weight average: a = d a + e w. Words: 0 count, 1 aOff, 2 wOff, 3 d, 4 e. */
export const AVERAGE = HEADER + /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let d = uf(3u); let e = uf(4u);
  for (var i = gid.x; i < u(0u); i += nw.x * 256u) { A[u(1u) + i] = d * A[u(1u) + i] + e * A[u(2u) + i]; }
}`;
