/**
 * The elementwise work of a dense stack's training steps in WebAssembly SIMD (4 floats a
 * lane): bias add, relu, the dropout mask, relu's gradient and the bias gradient's column
 * sums. In plain JS these loops took ~10% of a lecture iteration (1.4-2.3 ns an element,
 * measured); here they run over the stack's scratch memory, which sgemm reads and writes in
 * place.
 *
 * Each kernel computes what dense_direct.ts's JS loops compute, bit for bit, float32 step
 * by float32 step (tests/dense_simd_test.ts compares the bits, signed zeros and infinities
 * included): JS rounds each float64 sum or product of two float32 values back to float32,
 * which gives the float32 operation's result; relu in training (`(v + |v|) / 2`, -inf -> 0)
 * is f32x4.max(v, +0) and at inference (`v < 0 ? 0 : v`) f32x4.pmax(v, +0); the column sums
 * accumulate each column in float64 in row order, as the JS does.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DenseKernels } from "./dense_simd.ts";
 * const k = DenseKernels.create(64)!;
 * const z = k.alloc(4), b = k.alloc(4);
 * z.set([1, -2, 3, -4]);
 * b.set([0.5, 0.5, 0.5, 0.5]);
 * k.reluInfer(z, b, 1, 4);
 * assert.deepEqual([...z], [1.5, 0, 3.5, 0]);
 * ```
 */
import {
  ADD,
  AND,
  compiledOnce,
  DEMOTE_ZERO,
  f32c,
  F64X2_ADD,
  get,
  GT,
  I32,
  I32_ADD,
  I32_MUL,
  LOAD,
  loop,
  MAX,
  moduleBytes,
  MUL,
  PMAX,
  PROMOTE_LOW,
  set,
  shuffle,
  SPLAT,
  STORE,
  tee,
  V128,
  V128_ZERO,
  type WasmFunction,
} from "./wasm_asm.ts";

const at = (base: number, ...offsets: number[]) => [
  ...get(base),
  ...offsets.flatMap((o) => [...get(o), ...I32_ADD]),
];

/**
 * A kernel over rows: params (z, b, [m, h,] rows, colBytes); for each row offset `O` and
 * column offset `J`, `perLane` runs with the address of z[o+j] and v = z[o+j] + b[j] on the
 * stack; local `ZERO` holds +0 and `A` is a spare vector.
 */
function overRows(
  name: string,
  masked: boolean,
  perLane: (
    locals: { Z: number; M: number; H: number; O: number; J: number; ZERO: number; A: number },
  ) => number[],
): WasmFunction {
  const [Z, B, M, H] = [0, 1, 2, 3];
  const ROWS = masked ? 4 : 2, COLS = ROWS + 1;
  const [O, J, END, ZERO, A] = [COLS + 1, COLS + 2, COLS + 3, COLS + 4, COLS + 5];
  return {
    name,
    params: masked ? [I32, I32, I32, I32, I32, I32] : [I32, I32, I32, I32],
    results: [],
    locals: [[3, I32], [2, V128]],
    body: [
      ...V128_ZERO,
      ...set(ZERO),
      ...get(ROWS),
      ...get(COLS),
      ...I32_MUL,
      ...set(END),
      ...loop(O, END, { local: COLS }, [
        0x41, // i32.const 0
        0,
        ...set(J),
        ...loop(J, COLS, 16, [
          ...at(Z, O, J),
          ...at(Z, O, J),
          ...LOAD,
          ...at(B, J),
          ...LOAD,
          ...ADD,
          ...perLane({ Z, M, H, O, J, ZERO, A }),
        ]),
      ]),
    ],
  };
}

const FUNCTIONS: WasmFunction[] = [
  // z = z + b
  overRows("addBias", false, () => [...STORE]),
  // z = pmax(z + b, 0): `v < 0 ? 0 : v`
  overRows("reluInfer", false, ({ ZERO }) => [...get(ZERO), ...PMAX, ...STORE]),
  // z = max(z + b, +0): `(v + |v|) / 2` with -inf -> 0
  overRows("reluTrain", false, ({ ZERO }) => [...get(ZERO), ...MAX, ...STORE]),
  // z = max(z + b, +0); h = z * m
  overRows("reluTrainMask", true, ({ M, H, O, J, ZERO, A }) => [
    ...get(ZERO),
    ...MAX,
    ...tee(A),
    ...STORE,
    ...at(H, O, J),
    ...get(A),
    ...at(M, O, J),
    ...LOAD,
    ...MUL,
    ...STORE,
  ]),
  // dz = (d * m) * (a > 0 ? 1 : 0), over nbytes: params (d, m, a, dz, nbytes)
  flat("dzMask", true),
  // dz = d * (a > 0 ? 1 : 0): params (d, a, dz, nbytes)
  flat("dzPlain", false),
  colSums(),
];

function flat(name: string, masked: boolean): WasmFunction {
  const D = 0, M = 1, A = masked ? 2 : 1, DZ = A + 1, N = DZ + 1;
  const [I, ZERO, ONE] = [N + 1, N + 2, N + 3];
  return {
    name,
    params: masked ? [I32, I32, I32, I32, I32] : [I32, I32, I32, I32],
    results: [],
    locals: [[1, I32], [2, V128]],
    body: [
      ...V128_ZERO,
      ...set(ZERO),
      ...f32c(1),
      ...SPLAT,
      ...set(ONE),
      ...loop(I, N, 16, [
        ...at(DZ, I),
        ...at(D, I),
        ...LOAD,
        ...(masked ? [...at(M, I), ...LOAD, ...MUL] : []),
        ...at(A, I),
        ...LOAD,
        ...get(ZERO),
        ...GT,
        ...get(ONE),
        ...AND,
        ...MUL,
        ...STORE,
      ]),
    ],
  };
}

/** out[j] = float32(sum over rows of x[r][j] in float64, in row order): (x, out, rows, colBytes). */
function colSums(): WasmFunction {
  const [X, OUT, ROWS, COLS] = [0, 1, 2, 3];
  const [J, O, END, V, LO, HI] = [4, 5, 6, 7, 8, 9];
  const HIGH_HALF = [8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7];
  const LOW_HALVES = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];
  return {
    name: "colSums",
    params: [I32, I32, I32, I32],
    results: [],
    locals: [[3, I32], [3, V128]],
    body: [
      ...get(ROWS),
      ...get(COLS),
      ...I32_MUL,
      ...set(END),
      ...loop(J, COLS, 16, [
        ...V128_ZERO,
        ...set(LO),
        ...V128_ZERO,
        ...set(HI),
        0x41, // i32.const 0
        0,
        ...set(O),
        ...loop(O, END, { local: COLS }, [
          ...at(X, O, J),
          ...LOAD,
          ...tee(V),
          ...PROMOTE_LOW,
          ...get(LO),
          ...F64X2_ADD,
          ...set(LO),
          ...get(V),
          ...get(V),
          ...shuffle(HIGH_HALF),
          ...PROMOTE_LOW,
          ...get(HI),
          ...F64X2_ADD,
          ...set(HI),
        ]),
        ...at(OUT, J),
        ...get(LO),
        ...DEMOTE_ZERO,
        ...get(HI),
        ...DEMOTE_ZERO,
        ...shuffle(LOW_HALVES),
        ...STORE,
      ]),
    ],
  };
}

/** The module's bytes (exported for the tests). */
export function denseModuleBytes(): Uint8Array {
  return moduleBytes(FUNCTIONS, false);
}

const denseModule = compiledOnce(denseModuleBytes);

type Fn = (...args: number[]) => void;

/** Byte offsets are i32 in the kernels: stay below 2 GiB. */
const MAX_BYTES = 2 ** 31 - 65536;

/**
 * The kernels over one memory of `bytes`, carved into 16-byte-aligned float arrays by
 * {@link DenseKernels.alloc}. Every array a kernel takes must come from `alloc`; column
 * counts must be multiples of 4.
 */
export class DenseKernels {
  readonly #memory: WebAssembly.Memory;
  readonly #fns: Record<string, Fn>;
  #used = 0;
  readonly #bytes: number;

  private constructor(mod: WebAssembly.Module, bytes: number) {
    this.#bytes = bytes;
    this.#memory = new WebAssembly.Memory({ initial: Math.max(1, Math.ceil(bytes / 65536)) });
    const inst = new WebAssembly.Instance(mod, { env: { mem: this.#memory } });
    this.#fns = inst.exports as unknown as Record<string, Fn>;
  }

  /**
   * Kernels over at least `bytes` of memory, or null where WebAssembly SIMD is unavailable or
   * the memory cannot be had (past a 32-bit memory's 4 GiB): the caller keeps its JS loops.
   */
  static create(bytes: number): DenseKernels | null {
    const mod = denseModule();
    if (!mod || bytes > MAX_BYTES) return null;
    try {
      return new DenseKernels(mod, bytes);
    } catch {
      return null;
    }
  }

  /** The bytes `alloc` takes for `n` floats (what to size the memory by). */
  static bytesFor(n: number): number {
    return Math.ceil(n / 4) * 16;
  }

  /** `n` zeroed floats of this memory. */
  alloc(n: number): Float32Array {
    const bytes = DenseKernels.bytesFor(n);
    if (this.#used + bytes > this.#bytes) {
      throw new Error(`DenseKernels: ${n} more floats do not fit (sized too small)`);
    }
    const a = new Float32Array(this.#memory.buffer, this.#used, n);
    this.#used += bytes;
    return a;
  }

  /** z[r][j] += b[j] over `rows` rows of `cols`. */
  addBias(z: Float32Array, b: Float32Array, rows: number, cols: number): void {
    this.#fns.addBias(z.byteOffset, b.byteOffset, rows, cols * 4);
  }

  /** z = relu(z + b) as inference computes it (`v < 0 ? 0 : v`). */
  reluInfer(z: Float32Array, b: Float32Array, rows: number, cols: number): void {
    this.#fns.reluInfer(z.byteOffset, b.byteOffset, rows, cols * 4);
  }

  /** z = relu(z + b) as training computes it (`(v + |v|) / 2`, -inf -> 0). */
  reluTrain(z: Float32Array, b: Float32Array, rows: number, cols: number): void {
    this.#fns.reluTrain(z.byteOffset, b.byteOffset, rows, cols * 4);
  }

  /** {@link DenseKernels.reluTrain}, then h = z * m. */
  reluTrainMask(
    z: Float32Array,
    b: Float32Array,
    m: Float32Array,
    h: Float32Array,
    rows: number,
    cols: number,
  ): void {
    this.#fns.reluTrainMask(z.byteOffset, b.byteOffset, m.byteOffset, h.byteOffset, rows, cols * 4);
  }

  /** dz = (d * m) * (a > 0 ? 1 : 0) over `n` values (a multiple of 4). */
  dzMask(d: Float32Array, m: Float32Array, a: Float32Array, dz: Float32Array, n: number): void {
    this.#fns.dzMask(d.byteOffset, m.byteOffset, a.byteOffset, dz.byteOffset, n * 4);
  }

  /** dz = d * (a > 0 ? 1 : 0) over `n` values (a multiple of 4). */
  dzPlain(d: Float32Array, a: Float32Array, dz: Float32Array, n: number): void {
    this.#fns.dzPlain(d.byteOffset, a.byteOffset, dz.byteOffset, n * 4);
  }

  /** out[j] = the float64 sum of column j over `rows` rows, rounded to float32. */
  colSums(x: Float32Array, out: Float32Array, rows: number, cols: number): void {
    this.#fns.colSums(x.byteOffset, out.byteOffset, rows, cols * 4);
  }
}
