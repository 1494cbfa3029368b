/**
 * Adam over a list of variables, in two forms: `keras` (TF/Keras: epsilon added before the
 * bias correction, `lr_t = lr*sqrt(1-b2^t)/(1-b1^t)`, `p -= lr_t*m/(sqrt(v)+eps)`) and
 * `tfjs` (`tf.train.adam` and PyTorch: both moments bias-corrected, then epsilon). The state
 * (step count, moments) is plain typed arrays so it can be checkpointed and resumed exactly.
 * The update itself runs in an {@link AdamEngine}: plain JS here, a fused SIMD one on the
 * fast-cpu backend (stages/kernels.ts picks).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "@tensorflow/tfjs-backend-cpu";
 * import * as tf from "@tensorflow/tfjs-core";
 * import { Adam } from "./adam.ts";
 * const v = tf.variable(tf.tensor1d([1, 2]));
 * const opt = new Adam([v], { learningRate: 0.1, beta1: 0.9, beta2: 0.999, epsilon: 1e-7, form: "keras" });
 * opt.apply([tf.tensor1d([1, -1])]);
 * assert(opt.t === 1);
 * ```
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Config } from "../schema.ts";
import type { AdamConsts } from "../backends/adam_simd.ts";

/** Adam hyperparameters. */
export type AdamOptions = Pick<
  Config["optimizer"],
  "learningRate" | "beta1" | "beta2" | "epsilon" | "form"
>;

/** The state of an Adam optimizer, for checkpoints. */
export interface AdamState {
  t: number;
  m: Float32Array[];
  v: Float32Array[];
}

/** The per-step constants both forms reduce to (shared with the SIMD kernel). */
export type { AdamConsts };

/** Where the moments live and how a step is applied. */
export interface AdamEngine {
  /** Live first and second moments, one array per variable. */
  readonly m: Float32Array[];
  readonly v: Float32Array[];
  /** Applies one step; returns false if a parameter became NaN or infinite. */
  step(grads: tf.Tensor[], c: AdamConsts): boolean;
  /**
   * Where the engine keeps the live parameters and a gradient buffer per variable, if it
   * does (the SIMD engine): a caller may write gradients there and call
   * {@link AdamEngine.stepBuffered}, with no tensors in between.
   */
  readonly buffers?: { params: Float32Array[]; grads: Float32Array[] };
  /** One step with the gradients already in {@link AdamEngine.buffers}. */
  stepBuffered?(c: AdamConsts): boolean;
}

/** Reference update over one parameter array; returns false if a value is not finite. */
export function adamUpdateJs(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  { lrT, b1, b2, eps, corr2 }: AdamConsts,
): boolean {
  const ob1 = 1 - b1, ob2 = 1 - b2;
  let bad = 0;
  for (let i = 0; i < p.length; i++) {
    const gi = g[i];
    const mi = b1 * m[i] + ob1 * gi;
    const vi = b2 * v[i] + ob2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const pi = p[i] - (lrT * mi) / (Math.sqrt(vi * corr2) + eps);
    p[i] = pi;
    bad += pi - pi; // 0 unless pi is NaN or infinite
  }
  return bad === 0;
}

/**
 * The portable engine: reads each variable, updates a copy in JS, assigns it back (works on
 * every backend). `live` may hand out a variable's own storage for an in-place update.
 */
export class JsAdamEngine implements AdamEngine {
  readonly m: Float32Array[];
  readonly v: Float32Array[];
  constructor(
    readonly vars: tf.Variable[],
    readonly live: (v: tf.Variable) => Float32Array | null = () => null,
  ) {
    this.m = vars.map((x) => new Float32Array(x.size));
    this.v = vars.map((x) => new Float32Array(x.size));
  }

  step(grads: tf.Tensor[], c: AdamConsts): boolean {
    let ok = true;
    this.vars.forEach((variable, i) => {
      const g = grads[i].dataSync() as Float32Array;
      const live = this.live(variable);
      if (live) {
        ok = adamUpdateJs(live, g, this.m[i], this.v[i], c) && ok;
        return;
      }
      const p = new Float32Array(variable.dataSync() as Float32Array);
      ok = adamUpdateJs(p, g, this.m[i], this.v[i], c) && ok;
      variable.assign(tf.tensor(p, variable.shape));
    });
    return ok;
  }
}

/** Adam over a fixed list of variables. */
export class Adam {
  t = 0;
  /** Whether the last step produced only finite parameters. */
  finite = true;
  readonly engine: AdamEngine;

  constructor(
    readonly vars: tf.Variable[],
    readonly opts: AdamOptions,
    engine?: AdamEngine,
  ) {
    this.engine = engine ?? new JsAdamEngine(vars);
  }

  /**
   * The step constants of step `t` for these options, at `rateFactor` times the learning
   * rate (a schedule's factor: the options stay as configured).
   */
  static consts(opts: AdamOptions, t: number, rateFactor = 1): AdamConsts {
    const { beta1: b1, beta2: b2, epsilon: eps, form } = opts;
    const lr = opts.learningRate * rateFactor;
    const c1 = 1 - b1 ** t, c2 = 1 - b2 ** t;
    // keras: lr*sqrt(c2)/c1 * m/(sqrt(v)+eps)    -> corr2 = 1
    // tfjs:  lr/c1 * m/(sqrt(v/c2)+eps)           -> corr2 = 1/c2
    return form === "keras"
      ? { lrT: (lr * Math.sqrt(c2)) / c1, b1, b2, eps, corr2: 1 }
      : { lrT: lr / c1, b1, b2, eps, corr2: 1 / c2 };
  }

  /** Applies one step with gradients in the same order as the variables. */
  apply(grads: tf.Tensor[], rateFactor = 1): void {
    this.t += 1;
    this.finite = this.engine.step(grads, Adam.consts(this.opts, this.t, rateFactor));
  }

  /** Applies one step with the gradients the caller wrote into `engine.buffers.grads`. */
  applyBuffered(rateFactor = 1): void {
    if (!this.engine.stepBuffered) throw new Error("this Adam engine has no gradient buffers");
    this.t += 1;
    this.finite = this.engine.stepBuffered(Adam.consts(this.opts, this.t, rateFactor));
  }

  /** A copy of the state. */
  state(): AdamState {
    return {
      t: this.t,
      m: this.engine.m.map((a) => a.slice()),
      v: this.engine.v.map((a) => a.slice()),
    };
  }

  /** Restores a state taken with {@link Adam.state}. */
  restore(s: AdamState): void {
    if (s.m.length !== this.vars.length || s.m.some((a, i) => a.length !== this.vars[i].size)) {
      throw new Error("optimizer state does not match the network's shape");
    }
    this.t = s.t;
    s.m.forEach((a, i) => this.engine.m[i].set(a));
    s.v.forEach((a, i) => this.engine.v[i].set(a));
  }
}
