/**
 * The training steps of a dense stack without tfjs's autodiff: forward and backward written
 * out over typed arrays and BLAS, gradients written straight into the SIMD Adam's buffers.
 * On fast-cpu this replaces ~40 tensor allocations and ~60 kernel dispatches per minibatch
 * with a few fused loops around the same `sgemm` calls.
 *
 * It computes exactly what tfjs computes for the same step, in the same float32 roundings
 * and the same order (tests compare the bits): the unfused matmul, bias add and activation
 * that tfjs runs while recording gradients, Keras-style dropout masks from the same random
 * draws, and the logits BCE's gradient op by op as tfjs's tape accumulates it. That holds
 * for the lecture's settings (relu, linear output, BCE) and for leakyRelu; the recipe's
 * other settings (tanh or sigmoid outputs, the least-squares and hinge losses) agree with
 * tfjs to float rounding, not bit for bit (tests/recipe_test.ts).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { directSupported } from "./dense_direct.ts";
 * assert(directSupported("relu", "linear", "logits"));
 * assert(!directSupported("relu", "linear", "clipped"));
 * ```
 */
import type { Sgemm } from "../backends/blas.ts";
import { DenseKernels } from "../backends/dense_simd.ts";
import type { Activation } from "../schema.ts";
import type { Rng } from "../../pipeline/rng.ts";
import type { Net } from "./nets.ts";

const f = Math.fround;

/** Whether the direct path computes these settings (others use tfjs's autodiff). */
export function directSupported(hidden: Activation, output: Activation, loss: string): boolean {
  return loss === "logits" && (hidden === "relu" || hidden === "leakyRelu") &&
    OUTPUTS.includes(output);
}

const OUTPUTS: readonly Activation[] = ["linear", "tanh", "sigmoid", "relu"];

/** Applies an output activation in place over `size` values. */
function applyOutput(z: Float32Array, size: number, act: Activation): void {
  if (act === "tanh") { for (let o = 0; o < size; o++) z[o] = Math.tanh(z[o]); }
  else if (act === "sigmoid") { for (let o = 0; o < size; o++) z[o] = 1 / (1 + Math.exp(-z[o])); }
  else if (act === "relu") { for (let o = 0; o < size; o++) z[o] = z[o] < 0 ? 0 : z[o]; }
}

/** dz = d times the output activation's derivative, from its output `a`. */
function outputGrad(
  d: Float32Array,
  a: Float32Array,
  size: number,
  act: Activation,
  dz: Float32Array,
) {
  if (act === "tanh") { for (let o = 0; o < size; o++) dz[o] = d[o] * f(1 - f(a[o] * a[o])); }
  else if (act === "sigmoid") {
    for (let o = 0; o < size; o++) {
      dz[o] = d[o] * f(a[o] * f(1 - a[o]));
    }
  } else for (let o = 0; o < size; o++) dz[o] = d[o] * +(a[o] > 0);
}

/** Live parameters of one dense layer: W is [nIn, nOut] row-major. */
interface LayerParams {
  W: Float32Array;
  b: Float32Array;
}

/** Per-layer scratch for the largest minibatch. */
interface Scratch {
  nIn: number;
  nOut: number;
  /** The layer's input as last seen (a view of the caller's array or the previous `h`). */
  input: Float32Array;
  /** relu output before dropout (hidden layers), or the raw output (last layer). */
  a: Float32Array;
  /** What the next layer reads: `a` with the dropout mask applied (or `a` itself). */
  h: Float32Array;
  mask: Float32Array | null;
  /** Gradient with respect to this layer's pre-activation output. */
  dz: Float32Array;
  /** Gradient with respect to this layer's input (unused for the first layer). */
  dIn: Float32Array;
}

/**
 * A dense stack's forward and backward passes over preallocated buffers. Parameters are
 * read from `params()` at each call (they live in the optimizer's memory).
 */
export class DenseStack {
  #layers: Scratch[] = [];
  #rows = 0;
  readonly #sgemm: Sgemm;
  readonly #params: LayerParams[];
  #maskUsed = false;
  /** The last layer's activation: the police's and classifier's stacks return logits. */
  readonly #output: Activation;
  readonly #leaky: boolean;
  /** The SIMD elementwise kernels over the scratch memory (null: the JS loops). */
  #kernels: DenseKernels | null = null;
  /** Scratch for a layer's bias and for its bias gradient, as wide as the widest layer. */
  #bias: Float32Array = new Float32Array(0);
  #sums: Float32Array = new Float32Array(0);

  /** `params` are the live arrays of W and b per layer (the optimizer's memory). */
  constructor(readonly net: Net, sgemm: Sgemm, params: LayerParams[]) {
    this.#sgemm = sgemm;
    this.#params = params;
    this.#output = net.kind === "counterfeiter" ? net.outputActivation : "linear";
    this.#leaky = net.hiddenActivation === "leakyRelu";
  }

  /** leakyRelu over one hidden layer's pre-activations (bias added here), masked into `h`. */
  #leakyHidden(
    z: Float32Array,
    b: Float32Array,
    n: number,
    cols: number,
    m: Float32Array | null,
    h: Float32Array,
  ) {
    const slope = this.net.slope;
    for (let r = 0, o = 0; r < n; r++) {
      for (let j = 0; j < cols; j++, o++) {
        const v = f(z[o] + b[j]);
        const a = v < 0 ? f(slope * v) : v;
        z[o] = a;
        if (m) h[o] = a * m[o];
      }
    }
  }

  /** Grows the scratch buffers to hold `rows` rows. */
  #ensure(rows: number): void {
    if (rows <= this.#rows) return;
    this.#rows = rows;
    const net = this.net;
    const shapes = net.layers.map((l, i) => {
      const [nIn, nOut] = l.W.shape;
      const hidden = i < net.layers.length - 1;
      const masked = hidden && net.dropout > 0;
      const dz = hidden || this.#output !== "linear" ? rows * nOut : 0;
      return {
        nIn,
        nOut,
        masked,
        sizes: [rows * nOut, masked ? rows * nOut : 0, dz, i > 0 ? rows * nIn : 0],
      };
    });
    // the SIMD kernels take whole vectors of 4: every hidden width a multiple of 4
    const widest = Math.max(...shapes.map((s) => s.nOut));
    const fits = shapes.every((s, i) => i === shapes.length - 1 || s.nOut % 4 === 0);
    const bytes = [...shapes.flatMap((s) => [...s.sizes, s.sizes[1]]), widest, widest]
      .reduce((sum, n) => sum + DenseKernels.bytesFor(n), 0);
    const k = this.#leaky || !fits ? null : DenseKernels.create(bytes);
    const take = (n: number) => k ? k.alloc(n) : new Float32Array(n);
    this.#kernels = k;
    this.#bias = take(widest);
    this.#sums = take(widest);
    this.#layers = shapes.map(({ nIn, nOut, masked, sizes: [a, mask, dz, dIn] }) => {
      const av = take(a);
      return {
        nIn,
        nOut,
        input: av,
        a: av,
        h: masked ? take(mask) : av,
        mask: masked ? take(mask) : null,
        dz: take(dz),
        dIn: take(dIn),
      };
    });
  }

  /** The last layer's bias added to its `n` rows (no activation). */
  #addBias(z: Float32Array, l: number, n: number): void {
    const cols = this.#layers[l].nOut;
    if (this.#kernels && cols % 4 === 0) {
      this.#kernels.addBias(z, this.#biasOf(l), n, cols);
      return;
    }
    const b = this.#params[l].b;
    for (let o = 0; o < n * cols; o += cols) for (let j = 0; j < cols; j++) z[o + j] += b[j];
  }

  /** Layer `l`'s bias, copied into the kernels' memory. */
  #biasOf(l: number): Float32Array {
    const b = this.#params[l].b, out = this.#bias.subarray(0, b.length);
    out.set(b);
    return out;
  }

  /**
   * Inference forward pass of `n` rows (no dropout, no record), as tfjs's fused
   * matmul+bias+relu kernel computes it. Returns a view of the output, valid until the next
   * call.
   */
  infer(x: Float32Array, n: number): Float32Array {
    this.#ensure(n);
    const ps = this.#params;
    const last = this.#layers.length - 1;
    let input = x;
    for (let l = 0; l <= last; l++) {
      const s = this.#layers[l], { W, b } = ps[l], cols = s.nOut, size = n * cols;
      const z = s.a.subarray(0, size);
      this.#sgemm(false, false, n, cols, s.nIn, input, s.nIn, W, cols, z, cols);
      const k = this.#kernels;
      if (l === last) {
        this.#addBias(z, l, n);
        applyOutput(z, size, this.#output);
      } else if (this.#leaky) {
        this.#leakyHidden(z, b, n, cols, null, z);
      } else if (k) {
        k.reluInfer(z, this.#biasOf(l), n, cols);
      } else {
        for (let o = 0; o < size; o += cols) {
          for (let j = 0; j < cols; j++) {
            const v = f(z[o + j] + b[j]);
            z[o + j] = v < 0 ? 0 : v;
          }
        }
      }
      input = z;
    }
    return input;
  }

  /**
   * Training forward pass of `n` rows of `x`, recording what the backward pass needs. With
   * `dropoutRng`, hidden layers drop out (Keras masks, drawn layer by layer). Returns a view
   * of the output (logits for the police).
   */
  forward(x: Float32Array, n: number, dropoutRng: Rng | null): Float32Array {
    this.#ensure(n);
    const ps = this.#params;
    const last = this.#layers.length - 1;
    const threshold = Math.ceil(this.net.dropout * 4294967296);
    const scale = 1 / (1 - this.net.dropout);
    this.#maskUsed = dropoutRng !== null && this.net.dropout > 0;
    let input = x;
    for (let l = 0; l <= last; l++) {
      const s = this.#layers[l], { W, b } = ps[l], cols = s.nOut, size = n * cols;
      s.input = input;
      const z = s.a.subarray(0, size);
      this.#sgemm(false, false, n, cols, s.nIn, input, s.nIn, W, cols, z, cols);
      if (l === last) {
        this.#addBias(z, l, n);
        applyOutput(z, size, this.#output);
        return z;
      }
      const k = this.#kernels;
      // tfjs records add(matMul, bias) then relu: two roundings, the same here
      if (this.#leaky) {
        const m = this.#maskUsed ? s.mask!.subarray(0, size) : null;
        if (m) dropoutRng!.fillMask(m, threshold, scale);
        this.#leakyHidden(z, b, n, cols, m, s.h);
      } else if (k && this.#maskUsed) {
        const m = s.mask!.subarray(0, size);
        dropoutRng!.fillMask(m, threshold, scale);
        k.reluTrainMask(z, this.#biasOf(l), m, s.h, n, cols);
      } else if (k) {
        k.reluTrain(z, this.#biasOf(l), n, cols);
      } else if (this.#maskUsed) {
        const m = s.mask!.subarray(0, size);
        dropoutRng!.fillMask(m, threshold, scale);
        const h = s.h;
        for (let r = 0, o = 0; r < n; r++) {
          for (let j = 0; j < cols; j++, o++) {
            const v = f(z[o] + b[j]);
            const a = v === -Infinity ? 0 : (v + Math.abs(v)) * 0.5; // tfjs's Relu on fast-cpu
            z[o] = a;
            h[o] = a * m[o];
          }
        }
      } else {
        for (let r = 0, o = 0; r < n; r++) {
          for (let j = 0; j < cols; j++, o++) {
            const v = f(z[o] + b[j]);
            z[o] = v === -Infinity ? 0 : (v + Math.abs(v)) * 0.5;
          }
        }
      }
      input = this.#maskUsed ? s.h : s.a;
    }
    throw new Error("unreachable");
  }

  /**
   * Backward pass from the gradient of the output (`n` rows), for the last
   * {@link DenseStack.forward}. Writes weight and bias gradients into `grads` (in variable
   * order W, b, W, b, ...) when given, and the gradient with respect to the input into
   * `inputGradOut` when given.
   */
  backward(
    dOut: Float32Array,
    n: number,
    grads: Float32Array[] | null,
    inputGradOut: Float32Array | null,
  ): void {
    const ps = this.#params;
    const last = this.#layers.length - 1;
    let d = dOut;
    for (let l = last; l >= 0; l--) {
      const s = this.#layers[l], cols = s.nOut, size = n * cols;
      let dz: Float32Array;
      if (l === last) {
        dz = d;
        if (this.#output !== "linear") {
          dz = s.dz.subarray(0, size);
          outputGrad(d, s.a, size, this.#output, dz);
        }
      } else if (this.#leaky) {
        dz = s.dz.subarray(0, size);
        const a = s.a, m = this.#maskUsed ? s.mask! : null, slope = this.net.slope;
        for (let o = 0; o < size; o++) {
          const g = m ? f(d[o] * m[o]) : d[o];
          dz[o] = a[o] > 0 ? g : f(g * slope);
        }
      } else if (this.#kernels) {
        dz = s.dz.subarray(0, size);
        if (this.#maskUsed) this.#kernels.dzMask(d, s.mask!, s.a, dz, size);
        else this.#kernels.dzPlain(d, s.a, dz, size);
      } else {
        dz = s.dz.subarray(0, size);
        const a = s.a;
        if (this.#maskUsed) {
          const m = s.mask!;
          for (let o = 0; o < size; o++) dz[o] = f(d[o] * m[o]) * +(a[o] > 0);
        } else {
          for (let o = 0; o < size; o++) dz[o] = d[o] * +(a[o] > 0);
        }
      }
      if (grads) {
        const gW = grads[2 * l], gb = grads[2 * l + 1];
        this.#sgemm(true, false, s.nIn, cols, n, s.input, s.nIn, dz, cols, gW, cols);
        if (this.#kernels && l < last) {
          const sums = this.#sums.subarray(0, cols);
          this.#kernels.colSums(dz, sums, n, cols);
          gb.set(sums);
        } else columnSums(dz, n, cols, gb);
      }
      if (l > 0 || inputGradOut) {
        const out = l > 0 ? s.dIn.subarray(0, n * s.nIn) : inputGradOut!;
        this.#sgemm(false, true, n, s.nIn, cols, dz, cols, ps[l].W, cols, out, s.nIn);
        d = out;
      }
    }
  }
}

/** Column sums accumulated in float64, then rounded (as fast-cpu's Sum over axis 0). */
function columnSums(x: Float32Array, rows: number, cols: number, out: Float32Array): void {
  const acc = new Float64Array(cols);
  for (let r = 0, o = 0; r < rows; r++) for (let j = 0; j < cols; j++, o++) acc[j] += x[o];
  for (let j = 0; j < cols; j++) out[j] = acc[j];
}

/** Mean of sigmoid(logits) as tfjs computes it on fast-cpu (float64 sum, float32 steps). */
export function meanSigmoid(logits: Float32Array, n: number): number {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += f(1 / (1 + Math.exp(-logits[i])));
  return f(f(sum) / n);
}

/**
 * The counterfeiter's alternative losses from the police's logits and their gradients:
 * least squares on the probability, mean (sigmoid(l) - 1)^2, and the hinge mean
 * max(0, 1 - l). Returns the loss.
 */
export function counterfeiterLossAndGrad(
  form: "leastSquares" | "hinge",
  logits: Float32Array,
  n: number,
  dl: Float32Array,
): number {
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const l = logits[i];
    if (form === "hinge") {
      sum += l < 1 ? 1 - l : 0;
      dl[i] = l < 1 ? -1 / n : 0;
    } else {
      const p = 1 / (1 + Math.exp(-l));
      sum += (p - 1) * (p - 1);
      dl[i] = (2 * (p - 1) * p * (1 - p)) / n;
    }
  }
  return sum / n;
}

/**
 * Mean sigmoid cross-entropy from logits over `n` rows and its gradient, in the float32
 * steps tfjs takes for `mean(relu(l) - l*y + log1p(exp(-|l|)))` and its tape (gradients
 * into `l` accumulated from the abs, then the product, then the relu term). `y` null means
 * every label is 1. Returns the loss.
 */
export function bceLogitsAndGrad(
  logits: Float32Array,
  y: Float32Array | null,
  n: number,
  dl: Float32Array,
): number {
  const g0 = f(1 / n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const l = logits[i], yi = y ? y[i] : 1;
    const absL = Math.abs(l);
    const u = f(Math.exp(-absL));
    const r = (l + absL) * 0.5;
    sum += f(f(r - f(l * yi)) + f(Math.log1p(u)));
    const dexp = f(f(g0 / f(u + 1)) * u);
    const dAbs = l > 0 ? -dexp : dexp;
    dl[i] = f(f(dAbs + f(-g0 * yi)) + g0 * +(l > 0));
  }
  return f(f(sum) / n);
}
