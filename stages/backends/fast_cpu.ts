/**
 * The `fast-cpu` backend: tfjs's `cpu` backend with kernel overrides registered through
 * tfjs's own kernel registry. Stock `cpu` treats any broadcast, even a scalar operand, as a
 * generic slow path and multiplies matrices in a scalar loop; here matmuls go to BLAS
 * (`blas.ts`) and elementwise ops, reductions and the optimizer run as plain typed-array
 * loops. Every override falls back to the stock kernel for shapes or dtypes it does not
 * handle. An override may round differently from stock (BLAS sums in its own order), so a
 * tensor stage's key names the backend with its BLAS kernel family and thread count, and
 * holds this module's code: an edit to any kernel changes every tensor stage's key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs-core";
 * import { registerFastCpu } from "./fast_cpu.ts";
 * await registerFastCpu();
 * await tf.setBackend("fast-cpu");
 * assert(tf.matMul(tf.ones([2, 3]), tf.ones([3, 4])).shape[1] === 4);
 * ```
 */
import * as tf from "@tensorflow/tfjs-core";
import { MathBackendCPU } from "@tensorflow/tfjs-backend-cpu";
import { type Blas, loadBlas } from "./blas.ts";

type TensorInfo = tf.TensorInfo;
type KernelArgs = {
  inputs: Record<string, TensorInfo>;
  backend: MathBackendCPU;
  attrs?: Record<string, unknown>;
};
type KernelFn = (args: KernelArgs) => TensorInfo | TensorInfo[];

/** The name the backend registers under. */
export const FAST_CPU = "fast-cpu";

/** What {@link registerFastCpu} set up. */
export interface FastCpuInfo {
  /**
   * Which matmul runs ("openblas-0.3.21-Zen-t2": OpenBLAS 0.3.21's Zen kernels on 2 threads,
   * "js") and the kernels' revision: each rounds differently, so all of it is part of the cache
   * keys.
   */
  kernels: string;
  notes: string[];
  blas: Blas;
  overridden: string[];
}

let info: FastCpuInfo | null = null;

const values = (b: MathBackendCPU, t: TensorInfo) => b.data.get(t.dataId).values as Float32Array;
const sizeOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Broadcast output shape of two shapes (numpy rules), or null if incompatible. */
function broadcastShape(a: number[], b: number[]): number[] | null {
  const r = Math.max(a.length, b.length), out: number[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1, y = b[b.length - r + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) return null;
    out.push(Math.max(x, y));
  }
  return out;
}

const sameShape = (a: number[], b: number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

type BinLoop = (
  a: Float32Array,
  b: Float32Array,
  out: Float32Array,
  rows: number,
  cols: number,
) => void;

/**
 * Compiles the loops of one binary op for each operand pattern. Each op gets its own
 * monomorphic loops (a shared loop calling an op closure would not inline).
 */
function binaryLoops(
  expr: string,
): Record<"same" | "scalarB" | "scalarA" | "rowB" | "rowA" | "colB" | "colA", BinLoop> {
  const make = (body: string) => new Function("a", "b", "out", "rows", "cols", body) as BinLoop;
  const e = (x: string, y: string) => expr.replaceAll("X", x).replaceAll("Y", y);
  return {
    same: make(
      `for (let i = 0; i < out.length; i++) { const x = a[i], y = b[i]; out[i] = ${e("x", "y")}; }`,
    ),
    scalarB: make(
      `const y = b[0]; for (let i = 0; i < out.length; i++) { const x = a[i]; out[i] = ${
        e("x", "y")
      }; }`,
    ),
    scalarA: make(
      `const x = a[0]; for (let i = 0; i < out.length; i++) { const y = b[i]; out[i] = ${
        e("x", "y")
      }; }`,
    ),
    rowB: make(
      `for (let r = 0, o = 0; r < rows; r++) for (let j = 0; j < cols; j++, o++) { const x = a[o], y = b[j]; out[o] = ${
        e("x", "y")
      }; }`,
    ),
    rowA: make(
      `for (let r = 0, o = 0; r < rows; r++) for (let j = 0; j < cols; j++, o++) { const x = a[j], y = b[o]; out[o] = ${
        e("x", "y")
      }; }`,
    ),
    colB: make(
      `for (let r = 0, o = 0; r < rows; r++) { const y = b[r]; for (let j = 0; j < cols; j++, o++) { const x = a[o]; out[o] = ${
        e("x", "y")
      }; } }`,
    ),
    colA: make(
      `for (let r = 0, o = 0; r < rows; r++) { const x = a[r]; for (let j = 0; j < cols; j++, o++) { const y = b[o]; out[o] = ${
        e("x", "y")
      }; } }`,
    ),
  };
}

/** Which fast pattern, if any, two shapes fall into; with rows/cols of the output. */
export function binaryPattern(
  sa: number[],
  sb: number[],
):
  | { kind: keyof ReturnType<typeof binaryLoops>; rows: number; cols: number; out: number[] }
  | null {
  const out = broadcastShape(sa, sb);
  if (!out) return null;
  const na = sizeOf(sa), nb = sizeOf(sb), n = sizeOf(out);
  if (sameShape(sa, sb)) return { kind: "same", rows: 1, cols: n, out };
  if (nb === 1 && na === n) return { kind: "scalarB", rows: 1, cols: n, out };
  if (na === 1 && nb === n) return { kind: "scalarA", rows: 1, cols: n, out };
  const last = out[out.length - 1] ?? 1;
  const rows = n / Math.max(last, 1);
  const isRow = (s: number[]) => sizeOf(s) === last && (s[s.length - 1] ?? 1) === last;
  const isCol = (s: number[]) =>
    out.length === 2 && s.length === 2 && s[0] === out[0] && s[1] === 1;
  if (na === n && isRow(sb)) return { kind: "rowB", rows, cols: last, out };
  if (nb === n && isRow(sa)) return { kind: "rowA", rows, cols: last, out };
  if (na === n && isCol(sb)) return { kind: "colB", rows: out[0], cols: out[1], out };
  if (nb === n && isCol(sa)) return { kind: "colA", rows: out[0], cols: out[1], out };
  return null;
}

const BINARY: Record<string, string> = {
  Add: "X + Y",
  Sub: "X - Y",
  Multiply: "X * Y",
  RealDiv: "X / Y",
  Maximum: "(X > Y || Number.isNaN(X)) ? X : Y",
  Minimum: "(X < Y || Number.isNaN(X)) ? X : Y",
  SquaredDifference: "(X - Y) * (X - Y)",
};

const UNARY: Record<string, string> = {
  // branch-free: relu inputs are positive or negative at random, and a mispredicted branch
  // per element made this loop five times slower (measured); (x+|x|)/2 is exact in float64
  Relu: "x === -Infinity ? 0 : (x + Math.abs(x)) * 0.5",
  Exp: "Math.exp(x)",
  Log: "Math.log(x)",
  Log1p: "Math.log1p(x)",
  Neg: "-x",
  Abs: "Math.abs(x)",
  Sigmoid: "1 / (1 + Math.exp(-x))",
  Sqrt: "Math.sqrt(x)",
  Square: "x * x",
  Tanh: "Math.tanh(x)",
  Reciprocal: "1 / x",
};

function binaryKernel(name: string, stock: KernelFn): KernelFn {
  const loops = binaryLoops(BINARY[name]);
  return (args) => {
    const { a, b } = args.inputs;
    if (a.dtype !== "float32" || b.dtype !== "float32") return stock(args);
    const p = binaryPattern(a.shape, b.shape);
    if (!p) return stock(args);
    const out = new Float32Array(sizeOf(p.out));
    loops[p.kind](values(args.backend, a), values(args.backend, b), out, p.rows, p.cols);
    return args.backend.makeTensorInfo(p.out, "float32", out);
  };
}

function unaryKernel(name: string, stock: KernelFn): KernelFn {
  const loop = new Function(
    "a",
    "out",
    `for (let i = 0; i < out.length; i++) { const x = a[i]; out[i] = ${UNARY[name]}; }`,
  ) as (a: Float32Array, out: Float32Array) => void;
  return (args) => {
    const { x } = args.inputs;
    if (x.dtype !== "float32") return stock(args);
    const out = new Float32Array(sizeOf(x.shape));
    loop(values(args.backend, x), out);
    return args.backend.makeTensorInfo(x.shape, "float32", out);
  };
}

/** Step(x) = x > 0 ? 1 : alpha (NaN stays NaN), the relu gradient's mask; branch-free. */
function stepKernel(stock: KernelFn): KernelFn {
  return (args) => {
    const { x } = args.inputs;
    if (x.dtype !== "float32") return stock(args);
    const alpha = (args.attrs?.alpha as number) ?? 0;
    const a = values(args.backend, x), out = new Float32Array(a.length);
    let nans = 0;
    if (alpha === 0) {
      for (let i = 0; i < a.length; i++) {
        const v = a[i];
        out[i] = +(v > 0);
        nans += +(v !== v);
      }
    } else {
      for (let i = 0; i < a.length; i++) {
        const v = a[i], s = +(v > 0);
        out[i] = s + (1 - s) * alpha;
        nans += +(v !== v);
      }
    }
    if (nans) { for (let i = 0; i < a.length; i++) if (a[i] !== a[i]) out[i] = NaN; }
    return args.backend.makeTensorInfo(x.shape, "float32", out);
  };
}

/** Sum or Mean over leading or trailing contiguous axes (or all), float32. */
function reduceKernel(mean: boolean, stock: KernelFn): KernelFn {
  return (args) => {
    const { x } = args.inputs;
    if (x.dtype !== "float32") return stock(args);
    const rank = x.shape.length;
    const rawAxis = args.attrs?.axis as number | number[] | null | undefined;
    const axes =
      (rawAxis === null || rawAxis === undefined
        ? x.shape.map((_, i) => i)
        : (Array.isArray(rawAxis) ? rawAxis : [rawAxis]))
        .map((a) => (a < 0 ? a + rank : a)).sort((p, q) => p - q);
    const uniq = [...new Set(axes)];
    const contiguous = uniq.every((a, i) => i === 0 || a === uniq[i - 1] + 1);
    if (!contiguous) return stock(args);
    const leading = uniq.length === 0 || uniq[0] === 0;
    const trailing = uniq.length === 0 || uniq[uniq.length - 1] === rank - 1;
    if (!leading && !trailing) return stock(args);
    const keep = args.attrs?.keepDims as boolean;
    const outShape = keep
      ? x.shape.map((d, i) => (uniq.includes(i) ? 1 : d))
      : x.shape.filter((_, i) => !uniq.includes(i));
    const reduced = uniq.reduce((n, a) => n * x.shape[a], 1);
    const a = values(args.backend, x);
    const outSize = sizeOf(outShape);
    const out = new Float32Array(outSize);
    if (uniq.length === 0) {
      out.set(a);
    } else if (trailing) {
      // out[i] = sum over a contiguous run of `reduced` values
      for (let i = 0; i < outSize; i++) {
        let s = 0;
        const base = i * reduced;
        for (let j = 0; j < reduced; j++) s += a[base + j];
        out[i] = s;
      }
    } else {
      // leading axes: column sums over `reduced` rows of `outSize`
      const acc = new Float64Array(outSize);
      for (let r = 0; r < reduced; r++) {
        const base = r * outSize;
        for (let j = 0; j < outSize; j++) acc[j] += a[base + j];
      }
      for (let j = 0; j < outSize; j++) out[j] = acc[j];
    }
    if (mean && reduced > 0) { for (let i = 0; i < outSize; i++) out[i] /= reduced; }
    if (reduced === 0 && mean) out.fill(NaN);
    return args.backend.makeTensorInfo(outShape, "float32", out);
  };
}

/** Matmul shapes as tfjs defines them (batch dims broadcast by flattening). */
function matmulInto(
  blas: Blas,
  backend: MathBackendCPU,
  a: TensorInfo,
  b: TensorInfo,
  ta: boolean,
  tb: boolean,
): { shape: number[]; out: Float32Array; m: number; n: number } | null {
  if (a.dtype !== "float32" || b.dtype !== "float32") return null;
  const ra = a.shape.length, rb = b.shape.length;
  if (ra < 2 || rb < 2) return null;
  const k = ta ? a.shape[ra - 2] : a.shape[ra - 1];
  const kb = tb ? b.shape[rb - 1] : b.shape[rb - 2];
  if (k !== kb) return null;
  const m = ta ? a.shape[ra - 1] : a.shape[ra - 2];
  const n = tb ? b.shape[rb - 2] : b.shape[rb - 1];
  const batchA = sizeOf(a.shape.slice(0, -2)), batchB = sizeOf(b.shape.slice(0, -2));
  const outer = broadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  if (!outer) return null;
  const batch = Math.max(batchA, batchB);
  if (sizeOf(outer) !== batch) return null; // tfjs's own broadcasting rule; let stock decide
  const av = values(backend, a), bv = values(backend, b);
  const out = new Float32Array(batch * m * n);
  const lda = ta ? m : k, ldb = tb ? k : n;
  for (let i = 0; i < batch; i++) {
    const ai = (i % batchA) * m * k, bi = (i % batchB) * k * n;
    blas.sgemm(
      ta,
      tb,
      m,
      n,
      k,
      av.subarray(ai, ai + m * k),
      lda,
      bv.subarray(bi, bi + k * n),
      ldb,
      out.subarray(i * m * n, (i + 1) * m * n),
      n,
    );
  }
  return { shape: [...outer, m, n], out, m, n };
}

function batchMatMulKernel(blas: Blas, stock: KernelFn): KernelFn {
  return (args) => {
    const { a, b } = args.inputs;
    const r = matmulInto(
      blas,
      args.backend,
      a,
      b,
      !!args.attrs?.transposeA,
      !!args.attrs?.transposeB,
    );
    if (!r) return stock(args);
    return args.backend.makeTensorInfo(r.shape, "float32", r.out);
  };
}

function fusedMatMulKernel(blas: Blas, stock: KernelFn): KernelFn {
  return (args) => {
    const { a, b, bias, preluActivationWeights } = args.inputs;
    const act = (args.attrs?.activation as string) ?? "linear";
    const alpha = (args.attrs?.leakyreluAlpha as number) ?? 0.2;
    if (
      preluActivationWeights || !["linear", "relu", "sigmoid", "elu", "leakyrelu"].includes(act)
    ) {
      return stock(args);
    }
    if (
      bias &&
      (bias.dtype !== "float32" ||
        !(sizeOf(bias.shape) === 1 || bias.shape.at(-1) === sizeOf(bias.shape)))
    ) {
      return stock(args);
    }
    const r = matmulInto(
      blas,
      args.backend,
      a,
      b,
      !!args.attrs?.transposeA,
      !!args.attrs?.transposeB,
    );
    if (!r) return stock(args);
    const o = r.out;
    if (bias) {
      const bv = values(args.backend, bias);
      if (bv.length === 1) { for (let i = 0; i < o.length; i++) o[i] += bv[0]; }
      else if (bv.length === r.n) {
        for (let i = 0; i < o.length; i += r.n) for (let j = 0; j < r.n; j++) o[i + j] += bv[j];
      } else return stock(args);
    }
    if (act === "relu") { for (let i = 0; i < o.length; i++) o[i] = o[i] < 0 ? 0 : o[i]; }
    else if (act === "sigmoid") {
      for (let i = 0; i < o.length; i++) o[i] = 1 / (1 + Math.exp(-o[i]));
    } else if (act === "elu") {
      for (let i = 0; i < o.length; i++) {
        o[i] = o[i] >= 0 ? o[i] : Math.exp(o[i]) - 1;
      }
    } else if (act === "leakyrelu") {
      for (let i = 0; i < o.length; i++) {
        o[i] = o[i] < 0 ? alpha * o[i] : o[i];
      }
    }
    return args.backend.makeTensorInfo(r.shape, "float32", o);
  };
}

/**
 * The live storage of a tensor on fast-cpu (for in-place optimizer updates); null on other
 * backends.
 */
export function liveValues(t: tf.TensorInfo): Float32Array | null {
  if (tf.getBackend() !== FAST_CPU || t.dtype !== "float32") return null;
  const v = (tf.backend() as MathBackendCPU).data.get(t.dataId).values;
  return v instanceof Float32Array ? v : null;
}

/**
 * Moves a tensor's storage into `view` (same length): its values are copied there and the
 * backend reads and writes the view from now on. Used to keep parameters inside the SIMD
 * optimizer's memory.
 */
export function rehome(t: tf.TensorInfo, view: Float32Array): void {
  const data = (tf.backend() as MathBackendCPU).data.get(t.dataId);
  if (data.values === view) return;
  view.set(data.values as Float32Array);
  data.values = view;
}

/** The kernel behind the relu gradient on fast-cpu. */
export const RELU_GRAD = "GanReluGrad";

/**
 * tfjs computes the relu gradient as `dy * cast(step(x))`: two passes and two arrays the size
 * of the layer. On fast-cpu it is one branch-free pass, `dy * (x > 0)`, with NaN where x is
 * NaN: the same values, signed zeros included. The gradient registry is global, so other
 * backends keep tfjs's own formula.
 */
function registerReluGrad(): void {
  tf.registerKernel({
    kernelName: RELU_GRAD,
    backendName: FAST_CPU,
    kernelFunc: (({ inputs, backend }: KernelArgs) => {
      const { dy, x } = inputs;
      const d = values(backend, dy), xv = values(backend, x), out = new Float32Array(d.length);
      let nans = 0;
      for (let i = 0; i < d.length; i++) {
        const v = xv[i];
        out[i] = d[i] * +(v > 0);
        nans += +(v !== v);
      }
      if (nans) { for (let i = 0; i < d.length; i++) if (xv[i] !== xv[i]) out[i] = NaN; }
      return backend.makeTensorInfo(x.shape, "float32", out);
    }) as unknown as tf.KernelFunc,
  });
  tf.registerGradient({
    kernelName: "Relu",
    inputsToSave: ["x"],
    gradFunc: (dy, saved) => {
      const [x] = saved;
      const d = dy as tf.Tensor;
      const fast = tf.getBackend() === FAST_CPU && x.dtype === "float32" && d.dtype === "float32" &&
        d.size === x.size;
      if (fast) return { x: () => tf.engine().runKernel(RELU_GRAD, { dy: d, x }) as tf.Tensor };
      return { x: () => tf.mul(d, tf.cast(tf.step(x), "float32")) };
    },
  });
}

/** The matmul fast-cpu registered with (BLAS or the fallback), or null before registration. */
export function fastCpuSgemm(): Blas["sgemm"] | null {
  return info?.blas.sgemm ?? null;
}

/**
 * The matmul's part of the backend fact: `openblas-0.3.21-SkylakeX-t2` (library and its
 * release, the CPU kernel it picked, thread count; each rounds differently),
 * `openblas-SkylakeX-t2` where the library names no release, `blas-t2` where it names no kernel, or `js`.
 */
export function blasLabel(blas: Pick<Blas, "kind" | "core" | "threads" | "version">): string {
  if (blas.kind === "js") return "js";
  const safe = (s: string) => s.replace(/[^A-Za-z0-9_.]+/g, "_");
  const release = blas.version ? `-${safe(blas.version)}` : "";
  const lib = blas.core ? `openblas${release}-${safe(blas.core)}` : "blas";
  return blas.threads ? `${lib}-t${blas.threads}` : lib;
}

/** Registers the fast-cpu backend once: the cpu backend plus our kernel overrides. */
export function registerFastCpu(opts: { allowFfi?: boolean } = {}): Promise<FastCpuInfo> {
  if (info) return Promise.resolve(info);
  const allowFfi = opts.allowFfi ?? Deno.env.get("GAN_BLAS") !== "off";
  const blas = loadBlas({ allowFfi });
  tf.registerBackend(FAST_CPU, () => new MathBackendCPU(), 1);
  const stock = new Map<string, KernelFn>();
  for (const k of tf.getKernelsForBackend("cpu")) {
    stock.set(k.kernelName, k.kernelFunc as unknown as KernelFn);
  }
  const overrides = new Map<string, KernelFn>();
  for (const name of Object.keys(BINARY)) {
    if (stock.has(name)) overrides.set(name, binaryKernel(name, stock.get(name)!));
  }
  for (const name of Object.keys(UNARY)) {
    if (stock.has(name)) overrides.set(name, unaryKernel(name, stock.get(name)!));
  }
  overrides.set("Step", stepKernel(stock.get("Step")!));
  overrides.set("Sum", reduceKernel(false, stock.get("Sum")!));
  overrides.set("Mean", reduceKernel(true, stock.get("Mean")!));
  overrides.set("BatchMatMul", batchMatMulKernel(blas, stock.get("BatchMatMul")!));
  overrides.set("_FusedMatMul", fusedMatMulKernel(blas, stock.get("_FusedMatMul")!));
  for (const k of tf.getKernelsForBackend("cpu")) {
    const fn = overrides.get(k.kernelName) ?? (k.kernelFunc as unknown as KernelFn);
    tf.registerKernel({
      ...k,
      backendName: FAST_CPU,
      kernelFunc: fn as unknown as tf.KernelFunc,
    });
  }
  registerReluGrad();
  const notes = blas.kind === "js" ? [`matmul in TypeScript: ${blas.source}`] : [];
  if (blas.note) notes.push(blas.note);
  const kind = blasLabel(blas);
  info = {
    kernels: kind,
    notes,
    blas,
    overridden: [...overrides.keys()],
  };
  return Promise.resolve(info);
}
