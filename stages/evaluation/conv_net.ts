/**
 * The convolutional evaluator: a LeNet-like MNIST classifier, conv 5x5 -> relu -> max-pool 2
 * (twice), a dense feature layer (relu: the features the Frechet distance uses, as TF-GAN's
 * MNIST metrics use a conv net's), and a softmax over the classes. Convolutions are im2col
 * plus one sgemm each (the fast backend's BLAS, or the TypeScript matmul elsewhere), forward
 * and backward written out, so training costs a minute or two on two cores. Images are NHWC
 * rows of `side x side` pixels; every parameter is a Float32Array, saved as `.npy`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Rng } from "../../pipeline/rng.ts";
 * import { sgemmJs } from "../backends/blas.ts";
 * import { ConvNet } from "./conv_net.ts";
 * const net = ConvNet.init({ side: 12, filters: [2, 3], kernel: 3, dense: 5, classes: 4 }, new Rng(1), sgemmJs);
 * const x = new Rng(2).uniforms(2 * 144, 0, 1);
 * const p = net.probabilities(x, 2);
 * assert.equal(p.length, 8);
 * assert(Math.abs(p[0] + p[1] + p[2] + p[3] - 1) < 1e-5);
 * assert.equal(net.features(x, 2).length, 10);
 * ```
 */
import type { Rng } from "../../pipeline/rng.ts";
import type { Sgemm } from "../backends/blas.ts";

/** The shape of a conv evaluator. */
export interface ConvSpec {
  /** Image side (28 for MNIST); one channel. */
  side: number;
  /** Filters of each conv layer (each: kernel x kernel, valid, relu, 2x2 max-pool). */
  filters: number[];
  kernel: number;
  /** Width of the dense feature layer. */
  dense: number;
  classes: number;
}

/** One layer's parameters: W row-major [fanIn, fanOut], b [fanOut]. */
export interface Layer {
  W: Float32Array;
  b: Float32Array;
}

/** A conv layer's geometry. */
interface Geometry {
  h: number;
  cin: number;
  out: number;
  pooled: number;
  cout: number;
}

/** What a forward pass keeps for the backward one. */
interface Trace {
  n: number;
  cols: Float32Array[];
  /** Conv outputs after relu, before pooling. */
  acts: Float32Array[];
  /** For each pooled value, the index of its max in the conv output. */
  argmax: Int32Array[];
  flat: Float32Array;
  hidden: Float32Array;
  logits: Float32Array;
}

/** im2col of NHWC `x` [n, h, h, c] for a valid k x k conv: [n*o*o, k*k*c], (ky, kx, c) order. */
export function im2col(x: Float32Array, n: number, h: number, c: number, k: number): Float32Array {
  const o = h - k + 1, row = k * k * c;
  const cols = new Float32Array(n * o * o * row);
  let at = 0;
  for (let i = 0; i < n; i++) {
    for (let y = 0; y < o; y++) {
      for (let xo = 0; xo < o; xo++) {
        for (let ky = 0; ky < k; ky++) {
          // a plain loop: a subarray per patch row costs more than the copy (5 floats on layer 1)
          const src = ((i * h + y + ky) * h + xo) * c;
          for (let j = 0; j < k * c; j++) cols[at++] = x[src + j];
        }
      }
    }
  }
  return cols;
}

/** The adjoint of {@link im2col}: sums patch gradients back into [n, h, h, c]. */
export function col2im(
  cols: Float32Array,
  n: number,
  h: number,
  c: number,
  k: number,
): Float32Array {
  const o = h - k + 1;
  const x = new Float32Array(n * h * h * c);
  let at = 0;
  for (let i = 0; i < n; i++) {
    for (let y = 0; y < o; y++) {
      for (let xo = 0; xo < o; xo++) {
        for (let ky = 0; ky < k; ky++) {
          const dst = ((i * h + y + ky) * h + xo) * c;
          for (let j = 0; j < k * c; j++) x[dst + j] += cols[at++];
        }
      }
    }
  }
  return x;
}

/** 2x2 max-pool (stride 2) of NHWC [n, h, h, c]; the pooled values and their argmax. */
function maxPool(x: Float32Array, n: number, h: number, c: number) {
  const p = h >> 1;
  const out = new Float32Array(n * p * p * c), arg = new Int32Array(out.length);
  let at = 0;
  for (let i = 0; i < n; i++) {
    for (let y = 0; y < p; y++) {
      for (let xo = 0; xo < p; xo++) {
        for (let ch = 0; ch < c; ch++) {
          let best = -Infinity, where = 0;
          for (let dy = 0; dy < 2; dy++) {
            for (let dx = 0; dx < 2; dx++) {
              const idx = ((i * h + 2 * y + dy) * h + 2 * xo + dx) * c + ch;
              if (x[idx] > best) [best, where] = [x[idx], idx];
            }
          }
          out[at] = best;
          arg[at++] = where;
        }
      }
    }
  }
  return { out, arg };
}

/** y = x W + b (rows of x), then relu when asked. */
function dense(
  sgemm: Sgemm,
  x: Float32Array,
  rows: number,
  l: Layer,
  fanIn: number,
  relu: boolean,
): Float32Array {
  const fanOut = l.b.length;
  const y = new Float32Array(rows * fanOut);
  sgemm(false, false, rows, fanOut, fanIn, x, fanIn, l.W, fanOut, y, fanOut);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < fanOut; j++) {
      const v = y[r * fanOut + j] + l.b[j];
      y[r * fanOut + j] = relu && v < 0 ? 0 : v;
    }
  }
  return y;
}

/** dW = x^T dy, db = column sums of dy, and dx = dy W^T when wanted. */
function denseGrads(
  sgemm: Sgemm,
  x: Float32Array,
  dy: Float32Array,
  rows: number,
  l: Layer,
  fanIn: number,
  wantDx: boolean,
) {
  const fanOut = l.b.length;
  const dW = new Float32Array(fanIn * fanOut), db = new Float32Array(fanOut);
  sgemm(true, false, fanIn, fanOut, rows, x, fanIn, dy, fanOut, dW, fanOut);
  for (let r = 0; r < rows; r++) for (let j = 0; j < fanOut; j++) db[j] += dy[r * fanOut + j];
  let dx: Float32Array | null = null;
  if (wantDx) {
    dx = new Float32Array(rows * fanIn);
    sgemm(false, true, rows, fanIn, fanOut, dy, fanOut, l.W, fanOut, dx, fanIn);
  }
  return { dW, db, dx };
}

/** The conv evaluator's network. */
export class ConvNet {
  readonly geometry: Geometry[];
  constructor(
    readonly spec: ConvSpec,
    /** Conv layers, then the feature layer, then the class layer. */
    readonly layers: Layer[],
    readonly sgemm: Sgemm,
  ) {
    this.geometry = [];
    let h = spec.side, cin = 1;
    for (const cout of spec.filters) {
      const out = h - spec.kernel + 1;
      if (out < 2) throw new Error(`conv evaluator: ${spec.side}-pixel images are too small`);
      this.geometry.push({ h, cin, out, pooled: out >> 1, cout });
      [h, cin] = [out >> 1, cout];
    }
  }

  /** Glorot-uniform weights (Keras's default) and zero biases, drawn from `rng`. */
  static init(spec: ConvSpec, rng: Rng, sgemm: Sgemm): ConvNet {
    const shapes: [number, number][] = [];
    let h = spec.side, cin = 1;
    for (const cout of spec.filters) {
      shapes.push([spec.kernel * spec.kernel * cin, cout]);
      h = (h - spec.kernel + 1) >> 1;
      cin = cout;
    }
    shapes.push([h * h * cin, spec.dense], [spec.dense, spec.classes]);
    const layers = shapes.map(([fanIn, fanOut], i) => {
      // a conv layer's Glorot fans count its receptive field on both sides
      const conv = i < spec.filters.length;
      const fo = conv ? fanOut * spec.kernel * spec.kernel : fanOut;
      const limit = Math.sqrt(6 / (fanIn + fo));
      return { W: rng.uniforms(fanIn * fanOut, -limit, limit), b: new Float32Array(fanOut) };
    });
    return new ConvNet(spec, layers, sgemm);
  }

  /** The width of the flattened last conv output (the feature layer's input). */
  get flatWidth(): number {
    const g = this.geometry.at(-1)!;
    return g.pooled * g.pooled * g.cout;
  }

  /** The forward pass of `n` images; keeps what the backward pass needs. */
  forward(x: Float32Array, n: number): Trace {
    const k = this.spec.kernel;
    const cols: Float32Array[] = [], acts: Float32Array[] = [], argmax: Int32Array[] = [];
    let a = x;
    for (const [i, g] of this.geometry.entries()) {
      const c = im2col(a, n, g.h, g.cin, k);
      const y = dense(this.sgemm, c, n * g.out * g.out, this.layers[i], k * k * g.cin, true);
      const pooled = maxPool(y, n, g.out, g.cout);
      cols.push(c);
      acts.push(y);
      argmax.push(pooled.arg);
      a = pooled.out;
    }
    const nc = this.geometry.length;
    const hidden = dense(this.sgemm, a, n, this.layers[nc], this.flatWidth, true);
    const logits = dense(this.sgemm, hidden, n, this.layers[nc + 1], this.spec.dense, false);
    return { n, cols, acts, argmax, flat: a, hidden, logits };
  }

  /** The gradients of the mean softmax cross-entropy against one-hot `labels`; and the loss. */
  gradients(t: Trace, labels: Uint8Array): { loss: number; grads: Layer[] } {
    const { n } = t, kc = this.spec.classes, k = this.spec.kernel, nc = this.geometry.length;
    const dLogits = new Float32Array(n * kc);
    let loss = 0;
    for (let r = 0; r < n; r++) {
      let max = -Infinity;
      for (let j = 0; j < kc; j++) max = Math.max(max, t.logits[r * kc + j]);
      let sum = 0;
      for (let j = 0; j < kc; j++) sum += Math.exp(t.logits[r * kc + j] - max);
      for (let j = 0; j < kc; j++) {
        const p = Math.exp(t.logits[r * kc + j] - max) / sum;
        dLogits[r * kc + j] = (p - (j === labels[r] ? 1 : 0)) / n;
      }
      loss -= t.logits[r * kc + labels[r]] - max - Math.log(sum);
    }
    const grads: Layer[] = new Array(nc + 2);
    const out = denseGrads(
      this.sgemm,
      t.hidden,
      dLogits,
      n,
      this.layers[nc + 1],
      this.spec.dense,
      true,
    );
    grads[nc + 1] = { W: out.dW, b: out.db };
    const dHidden = out.dx!;
    for (let i = 0; i < dHidden.length; i++) if (t.hidden[i] <= 0) dHidden[i] = 0;
    const feat = denseGrads(this.sgemm, t.flat, dHidden, n, this.layers[nc], this.flatWidth, true);
    grads[nc] = { W: feat.dW, b: feat.db };
    let dPooled = feat.dx!;
    for (let i = nc - 1; i >= 0; i--) {
      const g = this.geometry[i];
      // un-pool onto the argmax, then the relu's mask
      const dAct = new Float32Array(t.acts[i].length);
      const arg = t.argmax[i];
      for (let j = 0; j < arg.length; j++) dAct[arg[j]] += dPooled[j];
      for (let j = 0; j < dAct.length; j++) if (t.acts[i][j] <= 0) dAct[j] = 0;
      const conv = denseGrads(
        this.sgemm,
        t.cols[i],
        dAct,
        n * g.out * g.out,
        this.layers[i],
        k * k * g.cin,
        i > 0,
      );
      grads[i] = { W: conv.dW, b: conv.db };
      if (i > 0) dPooled = col2im(conv.dx!, n, g.h, g.cin, k);
    }
    return { loss: loss / n, grads };
  }

  /** The feature layer's output (relu), `n` rows of `spec.dense`: what Frechet distances use. */
  features(x: Float32Array, n: number, batch = 500): Float32Array {
    const out = new Float32Array(n * this.spec.dense), dim = this.spec.side ** 2;
    for (let s = 0; s < n; s += batch) {
      const e = Math.min(n, s + batch);
      out.set(this.forward(x.subarray(s * dim, e * dim), e - s).hidden, s * this.spec.dense);
    }
    return out;
  }

  /** Class probabilities (softmax), `n` rows of `spec.classes`. */
  probabilities(x: Float32Array, n: number, batch = 500): Float32Array {
    const kc = this.spec.classes, dim = this.spec.side ** 2;
    const out = new Float32Array(n * kc);
    for (let s = 0; s < n; s += batch) {
      const e = Math.min(n, s + batch);
      const logits = this.forward(x.subarray(s * dim, e * dim), e - s).logits;
      for (let r = 0; r < e - s; r++) {
        let max = -Infinity, sum = 0;
        for (let j = 0; j < kc; j++) max = Math.max(max, logits[r * kc + j]);
        for (let j = 0; j < kc; j++) sum += Math.exp(logits[r * kc + j] - max);
        for (let j = 0; j < kc; j++) {
          out[(s + r) * kc + j] = Math.exp(logits[r * kc + j] - max) / sum;
        }
      }
    }
    return out;
  }
}
