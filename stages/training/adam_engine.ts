/**
 * The optimizer engine for the active backend: on fast-cpu, the fused WebAssembly SIMD Adam
 * with parameters living in its memory; elsewhere the portable JS engine.
 */
import * as tf from "@tensorflow/tfjs-core";
import { SimdAdamArena, simdAvailable } from "../backends/adam_simd.ts";
import { adamHelper } from "../backends/adam_threads.ts";
import { FAST_CPU, liveValues, rehome } from "../backends/fast_cpu.ts";
import { type AdamConsts, type AdamEngine, JsAdamEngine } from "./adam.ts";

/** The SIMD engine: one pass over memory per variable, parameters updated in place. */
export class SimdAdamEngine implements AdamEngine {
  readonly #arena: SimdAdamArena;
  constructor(readonly vars: tf.Variable[]) {
    this.#arena = new SimdAdamArena(vars.map((v) => v.size), adamHelper);
    vars.forEach((v, i) => rehome(v, this.#arena.params[i]));
  }
  get m(): Float32Array[] {
    return this.#arena.m;
  }
  get v(): Float32Array[] {
    return this.#arena.v;
  }
  get buffers(): { params: Float32Array[]; grads: Float32Array[] } {
    return { params: this.#arena.params, grads: this.#arena.g };
  }
  step(grads: tf.Tensor[], c: AdamConsts): boolean {
    this.vars.forEach((_, i) => this.#arena.g[i].set(grads[i].dataSync() as Float32Array));
    return this.stepBuffered(c);
  }
  stepBuffered(c: AdamConsts): boolean {
    // a no-op unless something replaced a variable's storage
    this.vars.forEach((variable, i) => rehome(variable, this.#arena.params[i]));
    return this.#arena.stepAll(c);
  }
}

/** The Adam engine to use for these variables on the current tfjs backend. */
export function makeAdamEngine(vars: tf.Variable[]): AdamEngine {
  if (tf.getBackend() === FAST_CPU) {
    return simdAvailable() ? new SimdAdamEngine(vars) : new JsAdamEngine(vars, liveValues);
  }
  return new JsAdamEngine(vars);
}
