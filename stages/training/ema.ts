/**
 * An exponential moving average of a net's weights, taken once per adversarial iteration: the
 * counterfeiter that samples (checkpoints, the final entry, `sample`, `export`) when
 * `adversarial.ema` is set. Reading the weights changes no training number, so a run with the
 * average trains bit for bit as one without it.
 *
 * The decay warms up as (1 + t) / (10 + t) until it reaches the configured one, so the early
 * average is not dominated by the random initial weights.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { emaDecayAt } from "./ema.ts";
 * assert.equal(emaDecayAt(0.999, 1), 2 / 11);
 * assert.equal(emaDecayAt(0.9, 1000), 0.9);
 * ```
 */
import * as tf from "@tensorflow/tfjs-core";
import { type Net, variablesOf } from "./nets.ts";

/** The decay used at iteration `t` (1-based). */
export function emaDecayAt(decay: number, t: number): number {
  return Math.min(decay, (1 + t) / (10 + t));
}

/** The running average of a net's weights. */
export class WeightAverage {
  readonly values: Float32Array[];

  /** Starts from `start` (a copy of the net's weights when not given). */
  constructor(readonly decay: number, net: Net, start?: Float32Array[]) {
    const vars = variablesOf(net);
    this.values = start
      ? start.map((a) => a.slice())
      : vars.map((v) => (v.dataSync() as Float32Array).slice());
    if (this.values.some((a, i) => a.length !== vars[i].size)) {
      throw new Error("the weight average does not match the network's shape");
    }
  }

  /** Folds in the net's weights after iteration `t`. */
  update(net: Net, t: number): void {
    const d = emaDecayAt(this.decay, t), e = 1 - d;
    variablesOf(net).forEach((v, i) => {
      const w = v.dataSync() as Float32Array, a = this.values[i];
      for (let k = 0; k < a.length; k++) a[k] = d * a[k] + e * w[k];
    });
  }

  /** A net shaped and set like `net` holding the average (the caller disposes it). */
  toNet(net: Net): Net {
    let i = 0;
    const take = (v: tf.Variable) => {
      const t = tf.tensor(this.values[i++].slice(), v.shape);
      const copy = tf.variable(t, false);
      t.dispose();
      return copy;
    };
    return { ...net, layers: net.layers.map((l) => ({ W: take(l.W), b: take(l.b) })) };
  }
}
