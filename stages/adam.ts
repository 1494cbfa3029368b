/**
 * Adam over a list of variables, in two forms: `keras` (TF/Keras: epsilon added before the
 * bias correction, `lr_t = lr*sqrt(1-b2^t)/(1-b1^t)`, `p -= lr_t*m/(sqrt(v)+eps)`) and
 * `tfjs` (`tf.train.adam` and PyTorch: both moments bias-corrected, then epsilon). The state
 * (step count, moments) is plain typed arrays so it can be checkpointed and resumed exactly.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs-core";
 * import { Adam } from "./adam.ts";
 * const v = tf.variable(tf.tensor1d([1, 2]));
 * const opt = new Adam([v], { learningRate: 0.1, beta1: 0.9, beta2: 0.999, epsilon: 1e-7, form: "keras" });
 * opt.apply([tf.tensor1d([1, -1])]);
 * console.assert(opt.t === 1);
 * ```
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Config } from "../pipeline/config.ts";

/** Adam hyperparameters. */
export type AdamOptions = Config["optimizer"];

/** The state of an Adam optimizer, for checkpoints. */
export interface AdamState {
  t: number;
  m: Float32Array[];
  v: Float32Array[];
}

/** A fused in-place update kernel a backend may provide (see backends/fast_cpu.ts). */
export type AdamKernel = (
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  c: { lrT: number; b1: number; b2: number; eps: number; corr2: number },
) => boolean;

/** Reference update: one pass over a parameter array; returns false if a value is not finite. */
export const adamUpdateJs: AdamKernel = (p, g, m, v, { lrT, b1, b2, eps, corr2 }) => {
  const ob1 = 1 - b1, ob2 = 1 - b2;
  let ok = true;
  for (let i = 0; i < p.length; i++) {
    const gi = g[i];
    const mi = b1 * m[i] + ob1 * gi;
    const vi = b2 * v[i] + ob2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const pi = p[i] - (lrT * mi) / (Math.sqrt(vi * corr2) + eps);
    p[i] = pi;
    if (pi - pi !== 0) ok = false; // NaN or infinite
  }
  return ok;
};

/** Adam over a fixed list of variables. */
export class Adam {
  t = 0;
  m: Float32Array[];
  v: Float32Array[];
  /** Whether the last step produced only finite parameters. */
  finite = true;

  constructor(
    readonly vars: tf.Variable[],
    readonly opts: AdamOptions,
    readonly kernel: AdamKernel = adamUpdateJs,
  ) {
    this.m = vars.map((x) => new Float32Array(x.size));
    this.v = vars.map((x) => new Float32Array(x.size));
  }

  /** Applies one step with gradients in the same order as the variables. */
  apply(grads: tf.Tensor[]): void {
    const { learningRate: lr, beta1: b1, beta2: b2, epsilon: eps, form } = this.opts;
    this.t += 1;
    const c1 = 1 - b1 ** this.t, c2 = 1 - b2 ** this.t;
    // keras: lr*sqrt(c2)/c1 * m/(sqrt(v)+eps)       -> corr2 = 1
    // tfjs:  lr/c1 * m/(sqrt(v/c2)+eps)              -> corr2 = 1/c2
    const c = form === "keras"
      ? { lrT: (lr * Math.sqrt(c2)) / c1, b1, b2, eps, corr2: 1 }
      : { lrT: lr / c1, b1, b2, eps, corr2: 1 / c2 };
    let ok = true;
    this.vars.forEach((variable, i) => {
      const p = new Float32Array(variable.dataSync() as Float32Array);
      const g = grads[i].dataSync() as Float32Array;
      if (!this.kernel(p, g, this.m[i], this.v[i], c)) ok = false;
      variable.assign(tf.tensor(p, variable.shape));
    });
    this.finite = ok;
  }

  /** A copy of the state. */
  state(): AdamState {
    return { t: this.t, m: this.m.map((a) => a.slice()), v: this.v.map((a) => a.slice()) };
  }

  /** Restores a state taken with {@link Adam.state}. */
  restore(s: AdamState): void {
    if (s.m.length !== this.vars.length || s.m.some((a, i) => a.length !== this.vars[i].size)) {
      throw new Error("optimizer state does not match the network's shape");
    }
    this.t = s.t;
    this.m = s.m.map((a) => a.slice());
    this.v = s.v.map((a) => a.slice());
  }
}
