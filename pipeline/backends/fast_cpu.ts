/**
 * The `fast-cpu` backend: placeholder registration until the kernel overrides land; it is
 * the stock `cpu` backend registered under another name.
 */
import * as tf from "@tensorflow/tfjs-core";
import { MathBackendCPU } from "@tensorflow/tfjs-backend-cpu";

/** What {@link registerFastCpu} set up. */
export interface FastCpuInfo {
  kernels: string;
  notes: string[];
}

let info: FastCpuInfo | null = null;

/** Registers the fast-cpu backend once. */
export function registerFastCpu(): Promise<FastCpuInfo> {
  if (info) return Promise.resolve(info);
  tf.registerBackend("fast-cpu", () => new MathBackendCPU(), 1);
  for (const k of tf.getKernelsForBackend("cpu")) {
    tf.registerKernel({ ...k, backendName: "fast-cpu" });
  }
  info = { kernels: "stock", notes: [] };
  return Promise.resolve(info);
}

/** The fused Adam kernel of this backend, when it has one. */
export function fastAdamKernel():
  | ((
    p: Float32Array,
    g: Float32Array,
    m: Float32Array,
    v: Float32Array,
    c: { lrT: number; b1: number; b2: number; eps: number; corr2: number },
  ) => boolean)
  | null {
  return null;
}
