/**
 * A fused Adam step in WebAssembly SIMD (4 floats a lane), for the fast-cpu backend. The
 * parameters, both moments and a gradient buffer live in one WebAssembly memory per
 * optimizer, and each variable's tfjs storage is re-pointed at its slice of that memory, so a
 * step is one pass over memory with no copies but the gradient's. The module is assembled
 * here from the instruction list below (no binary blob in the repository).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { adamModuleBytes, simdAvailable } from "./adam_simd.ts";
 * assert.deepEqual([...adamModuleBytes().subarray(0, 4)], [0x00, 0x61, 0x73, 0x6d]); // "\0asm"
 * assert.equal(simdAvailable(), WebAssembly.validate(adamModuleBytes() as BufferSource));
 * ```
 */

import {
  type AdamConsts,
  type AdamHelper,
  type AdamRange,
  MAX_RANGES,
  SPLIT_MIN,
} from "./adam_threads.ts";

export type { AdamConsts };

import {
  ADD,
  compiledOnce,
  DIV,
  F32,
  F32_ADD,
  F32_EQ,
  F32_SUB,
  f32c,
  get,
  I32,
  I32_ADD,
  lane,
  LOAD,
  loop,
  moduleBytes,
  MUL,
  set,
  SPLAT,
  SQRT,
  STORE,
  SUB,
  tee,
  V128,
} from "./wasm_asm.ts";

// Parameters: p g m v nbytes (i32), lrT b1 b2 eps corr2 (f32). Locals after them.
const [P, G, M, V, N, LR, B1, B2, EPS, C2] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
const [I, VB1, VOB1, VB2, VOB2, VLR, VEPS, VC2, GI, MI, VI, PI, ACC] = [
  10,
  11,
  12,
  13,
  14,
  15,
  16,
  17,
  18,
  19,
  20,
  21,
  22,
];
const at = (base: number) => [...get(base), ...get(I), ...I32_ADD];

const BODY = [
  ...get(B1),
  ...SPLAT,
  ...set(VB1),
  ...f32c(1),
  ...get(B1),
  ...F32_SUB,
  ...SPLAT,
  ...set(VOB1),
  ...get(B2),
  ...SPLAT,
  ...set(VB2),
  ...f32c(1),
  ...get(B2),
  ...F32_SUB,
  ...SPLAT,
  ...set(VOB2),
  ...get(LR),
  ...SPLAT,
  ...set(VLR),
  ...get(EPS),
  ...SPLAT,
  ...set(VEPS),
  ...get(C2),
  ...SPLAT,
  ...set(VC2),
  ...loop(I, N, 16, [
    // gi = g[i]
    ...at(G),
    ...LOAD,
    ...set(GI),
    // m[i] = b1*m + (1-b1)*g
    ...at(M),
    ...get(VB1),
    ...at(M),
    ...LOAD,
    ...MUL,
    ...get(VOB1),
    ...get(GI),
    ...MUL,
    ...ADD,
    ...tee(MI),
    ...STORE,
    // v[i] = b2*v + (1-b2)*g*g
    ...at(V),
    ...get(VB2),
    ...at(V),
    ...LOAD,
    ...MUL,
    ...get(VOB2),
    ...get(GI),
    ...MUL,
    ...get(GI),
    ...MUL,
    ...ADD,
    ...tee(VI),
    ...STORE,
    // p[i] = p - lrT*m / (sqrt(v*corr2) + eps)
    ...at(P),
    ...at(P),
    ...LOAD,
    ...get(VLR),
    ...get(MI),
    ...MUL,
    ...get(VI),
    ...get(VC2),
    ...MUL,
    ...SQRT,
    ...get(VEPS),
    ...ADD,
    ...DIV,
    ...SUB,
    ...tee(PI),
    ...STORE,
    // acc += p - p (stays 0 unless a value is NaN or infinite)
    ...get(ACC),
    ...get(PI),
    ...get(PI),
    ...SUB,
    ...ADD,
    ...set(ACC),
  ]),
  ...get(ACC),
  ...lane(0),
  ...get(ACC),
  ...lane(1),
  ...F32_ADD,
  ...get(ACC),
  ...lane(2),
  ...F32_ADD,
  ...get(ACC),
  ...lane(3),
  ...F32_ADD,
  ...f32c(0),
  ...F32_EQ,
];

/**
 * The assembled module's bytes. `shared`: it imports a shared memory (limits 1 to 65536
 * pages), which threads can step together.
 */
export function adamModuleBytes(shared = false): Uint8Array {
  const fn = {
    name: "adam",
    params: [I32, I32, I32, I32, I32, F32, F32, F32, F32, F32],
    results: [I32],
    locals: [[1, I32], [12, V128]] as [number, number][],
    body: BODY,
  };
  return moduleBytes([fn], shared);
}

let compiledShared: WebAssembly.Module | undefined;

/** The module that imports a shared memory (for arenas a worker thread steps too). */
export function sharedModule(): WebAssembly.Module | null {
  if (!adamModule()) return null;
  return (compiledShared ??= new WebAssembly.Module(adamModuleBytes(true) as BufferSource));
}

/** The compiled module, or null where WebAssembly SIMD is unavailable. */
export const adamModule: () => WebAssembly.Module | null = compiledOnce(() => adamModuleBytes());

/** Whether the SIMD Adam can run here. */
export function simdAvailable(): boolean {
  return adamModule() !== null;
}

type AdamFn = (
  p: number,
  g: number,
  m: number,
  v: number,
  nbytes: number,
  lrT: number,
  b1: number,
  b2: number,
  eps: number,
  corr2: number,
) => number;

/**
 * One optimizer's memory: for each of `sizes`, slices for the parameters, both moments and
 * the gradient, each 16-byte aligned. With `helper` (see adam_threads.ts) the memory is
 * shared and {@link SimdAdamArena.stepAll} splits large variables with the worker thread.
 */
export class SimdAdamArena {
  readonly params: Float32Array[] = [];
  readonly m: Float32Array[] = [];
  readonly v: Float32Array[] = [];
  readonly g: Float32Array[] = [];
  readonly #offsets: number[] = [];
  readonly #fn: AdamFn;
  readonly #helper: AdamHelper | null;
  readonly #id: number = 0;
  /** Per variable, where the worker's part starts (its length when it is not split). */
  readonly #split: number[];
  /** The worker's ranges, in variable order. */
  readonly #theirs: AdamRange[] = [];

  /**
   * `helper`: the worker to split with, or a function that gives it (called only when some
   * variable is large enough to split, so small nets start no thread).
   */
  constructor(
    sizes: number[],
    helper: AdamHelper | null | ((mod: WebAssembly.Module) => AdamHelper | null) = null,
  ) {
    const mod = adamModule();
    if (!mod) throw new Error("WebAssembly SIMD is unavailable");
    const padded = sizes.map((n) => Math.ceil(n / 4) * 4);
    const total = padded.reduce((a, b) => a + b, 0) * 4 * 4; // four arrays of float32
    const pages = Math.max(1, Math.ceil(total / 65536));
    const splits = sizes.filter((n) => n >= SPLIT_MIN).length;
    const splitting = splits > 0 && splits <= MAX_RANGES;
    this.#helper = !splitting
      ? null
      : typeof helper === "function"
      ? helper(sharedModule()!)
      : helper;
    const memory = this.#helper
      ? new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true })
      : new WebAssembly.Memory({ initial: pages });
    const inst = new WebAssembly.Instance(this.#helper ? sharedModule()! : mod, {
      env: { mem: memory },
    });
    this.#fn = inst.exports.adam as AdamFn;
    let off = 0;
    const take = (n: number, pad: number) => {
      const a = new Float32Array(memory.buffer, off, n);
      off += pad * 4;
      return a;
    };
    sizes.forEach((n, i) => {
      this.#offsets.push(off);
      this.params.push(take(n, padded[i]));
      this.m.push(take(n, padded[i]));
      this.v.push(take(n, padded[i]));
      this.g.push(take(n, padded[i]));
    });
    const vecOf = (n: number) => n - (n % 4);
    this.#split = sizes.map((n) => this.#helper && n >= SPLIT_MIN ? (n >> 3) << 2 : vecOf(n));
    sizes.forEach((n, i) => {
      if (this.#split[i] < vecOf(n)) this.#theirs.push(this.#range(i, this.#split[i], vecOf(n)));
    });
    if (this.#helper) this.#id = this.#helper.register(this, memory);
  }

  /** Byte offsets of elements [from, to) of variable `i`. */
  #range(i: number, from: number, to: number): AdamRange {
    const base = this.#offsets[i], stride = Math.ceil(this.params[i].length / 4) * 16;
    const at = base + from * 4;
    return {
      p: at,
      g: at + 3 * stride,
      m: at + stride,
      v: at + 2 * stride,
      bytes: (to - from) * 4,
    };
  }

  #run(r: AdamRange, c: AdamConsts): boolean {
    return this.#fn(r.p, r.g, r.m, r.v, r.bytes, c.lrT, c.b1, c.b2, c.eps, c.corr2) === 1;
  }

  /** The last n % 4 values of variable `i`, in plain JS. */
  #tail(i: number, c: AdamConsts): boolean {
    const p = this.params[i], g = this.g[i], m = this.m[i], v = this.v[i];
    let ok = true;
    for (let k = p.length - (p.length % 4); k < p.length; k++) {
      m[k] = c.b1 * m[k] + (1 - c.b1) * g[k];
      v[k] = c.b2 * v[k] + (1 - c.b2) * g[k] * g[k];
      p[k] = p[k] - (c.lrT * m[k]) / (Math.sqrt(v[k] * c.corr2) + c.eps);
      if (!Number.isFinite(p[k])) ok = false;
    }
    return ok;
  }

  /** Steps variable `i` with the gradient already in `g[i]`; false if a value is not finite. */
  step(i: number, c: AdamConsts): boolean {
    const n = this.params[i].length;
    const ok = this.#run(this.#range(i, 0, n - (n % 4)), c);
    return this.#tail(i, c) && ok;
  }

  /** Steps every variable (on two threads where the arena has a helper); false if not finite. */
  stepAll(c: AdamConsts): boolean {
    const h = this.#helper;
    if (!h || !h.usable) {
      let ok = true;
      for (let i = 0; i < this.params.length; i++) ok = this.step(i, c) && ok;
      return ok;
    }
    const mine = () => {
      let ok = true;
      for (let i = 0; i < this.params.length; i++) {
        const vec = this.#run(this.#range(i, 0, this.#split[i]), c);
        ok = this.#tail(i, c) && vec && ok;
      }
      return ok;
    };
    const theirs = () => this.#theirs.reduce((ok, r) => this.#run(r, c) && ok, true);
    // (run first, then && ok: every range is stepped whatever an earlier one said)
    return h.run(this.#id, this.#theirs, c, mine, theirs);
  }
}
