/** The Adam update kernel of the active backend (a fused one where the backend has it). */
import { fastAdamKernel } from "../pipeline/backends/fast_cpu.ts";
import * as tf from "@tensorflow/tfjs-core";
import { type AdamKernel, adamUpdateJs } from "./adam.ts";

/** The Adam kernel to use on the current tfjs backend. */
export function activeAdamKernel(): AdamKernel {
  return tf.getBackend() === "fast-cpu" ? (fastAdamKernel() ?? adamUpdateJs) : adamUpdateJs;
}
