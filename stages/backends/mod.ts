/**
 * Choosing and setting up the tensor engine. `auto` tries `tensorflow` (tfjs-node-gpu, then
 * tfjs-node: native libtensorflow, when the user has installed it), then `fast-cpu`; `webgpu`
 * only when named (it is slower than fast-cpu on the one GPU measured). An
 * explicitly requested backend that is unavailable is an error that says how to get it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { selectBackend } from "./mod.ts";
 * const choice = await selectBackend("cpu");
 * assert(choice.name === "cpu");
 * ```
 */
import { createRequire } from "node:module";
import { dirname } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { StageError } from "../../pipeline/errors.ts";
import type { Runtime } from "../../pipeline/stage.ts";
import { blasLoaded } from "./blas.ts";
export { cpuModel } from "./cpu_info.ts";
import { registerFastCpu } from "./fast_cpu.ts";
import { denormalMode, flushDenormals } from "./ftz.ts";
import { acquireGpu, adapterName, type GpuDevice, requireGpu, setTrainingGpu } from "./webgpu.ts";

/** A backend name as the config and CLI accept it. */
export type BackendName = "auto" | "tensorflow" | "webgpu" | "fast-cpu" | "wasm" | "cpu";

/** The outcome of {@link selectBackend}. */
export interface BackendChoice {
  /** The backend in use. */
  name: Exclude<BackendName, "auto">;
  /** Why it was chosen (for the first log line and the run record). */
  reason: string;
  /** Notes on what was tried and not found. */
  notes: string[];
  /**
   * What the tensor stages compute on, as the engine takes it: the facts that go into their
   * cache keys (the engine, kernel family and threads, tfjs version, denormal mode) and this
   * module, whose import graph (every backend's kernels) is code of those stages.
   */
  runtime: Runtime & { facts: TensorFacts };
}

/** The facts that change a tensor stage's numbers. */
export interface TensorFacts {
  /**
   * The engine and whatever in it rounds differently: `fast-cpu/openblas-0.3.21-SkylakeX-t2` is
   * fast-cpu with OpenBLAS 0.3.21's SkylakeX kernels on 2 threads. The kernels' code is in the key
   * through the runtime's modules, so no revision number is kept by hand.
   */
  backend: string;
  tfjs: string;
  /** `flush`: denormals flush to zero (FTZ/DAZ); `ieee`: they do not (off, or unsupported). */
  denormals: "flush" | "ieee";
}

/** The tfjs version the pipeline was built with. */
export const TFJS_VERSION: string = tf.version_core;

const chosen = new Map<string, BackendChoice>();

async function tryTensorflow(notes: string[]): Promise<boolean> {
  const req = createRequire(import.meta.url);
  for (const pkg of ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"]) {
    let path: string;
    try {
      path = req.resolve(pkg);
    } catch {
      notes.push(`${pkg} not installed`);
      continue;
    }
    try {
      await import(path);
      if (await tf.setBackend("tensorflow")) return true;
      notes.push(`${pkg} loaded but did not register the tensorflow backend`);
    } catch (e) {
      notes.push(`${pkg} failed to load: ${(e as Error).message.split("\n")[0]}`);
    }
  }
  return false;
}

/** Loads tfjs's WebAssembly backend, pointing it at the .wasm files in its package. */
async function registerWasm(): Promise<void> {
  try {
    const wasm = await import("@tensorflow/tfjs-backend-wasm");
    const req = createRequire(import.meta.url);
    wasm.setWasmPaths(dirname(req.resolve("@tensorflow/tfjs-backend-wasm")) + "/");
  } catch (e) {
    throw new StageError(
      `backend "wasm" failed to load (${
        (e as Error).message.split("\n")[0]
      }); run \`deno install\`, or use --backend fast-cpu`,
    );
  }
}

/**
 * The webgpu backend on `gpu`: training on the device, the host's tensor work (initial
 * weights, evaluation) on fast-cpu; both in the key.
 */
async function webgpuChoice(gpu: GpuDevice, reason: string, notes: string[]) {
  const fast = await registerFastCpu();
  notes.push(...fast.notes);
  return {
    name: "webgpu" as const,
    reason,
    kernels: `${adapterName(gpu.facts)}+fast-cpu/${fast.kernels}`,
  };
}

/** Options of {@link selectBackend}. */
export interface BackendOptions {
  /** Flush denormal floats to zero (the config's `flushDenormals`); default true. */
  flushDenormals?: boolean;
}

/**
 * Sets the process's floating-point mode, once: BLAS threads keep the mode they started
 * with, so a different request after BLAS is loaded is refused rather than half-applied.
 */
function setDenormals(flush: boolean): { denormals: "flush" | "ieee"; note?: string } {
  const now = denormalMode();
  const wanted = flush ? "on" : "off";
  if (now && now.mode !== "unsupported" && now.mode !== wanted && blasLoaded()) {
    throw new StageError(
      `flushDenormals=${flush} was asked for after this process started BLAS with it ${now.mode}; ` +
        `run it in a separate process`,
    );
  }
  const s = now?.mode === wanted ? now : flushDenormals(flush);
  if (s.mode === "unsupported") {
    return {
      denormals: "ieee",
      note: flush ? `denormals cannot be flushed here (${s.detail}); IEEE denormals` : undefined,
    };
  }
  return { denormals: s.mode === "on" ? "flush" : "ieee" };
}

/** Selects, initialises and returns the backend. Safe to call more than once. */
export async function selectBackend(
  requested: BackendName,
  { flushDenormals = true }: BackendOptions = {},
): Promise<BackendChoice> {
  const key = `${requested}/${flushDenormals}`;
  const known = chosen.get(key);
  if (known) {
    await tf.setBackend(known.name === "webgpu" ? "fast-cpu" : known.name);
    setTrainingGpu(known.name === "webgpu" ? await acquireGpu(true) : null);
    return known;
  }
  tf.enableProdMode(); // no debug checks, and no banner noise
  const notes: string[] = [];
  // before anything loads BLAS: its threads inherit the mode
  const fp = setDenormals(flushDenormals);
  if (fp.note) notes.push(fp.note);
  let choice: Pick<BackendChoice, "name" | "reason"> & { kernels?: string };
  let gpu: GpuDevice | null = null;
  if (requested === "tensorflow" || requested === "auto") {
    if (await tryTensorflow(notes)) {
      choice = {
        name: "tensorflow",
        reason: requested === "auto" ? "auto: libtensorflow found" : "requested",
      };
    } else if (requested === "tensorflow") {
      throw new StageError(
        `backend "tensorflow" is not available (${
          notes.join("; ")
        }); install it with \`deno add npm:@tensorflow/tfjs-node@${TFJS_VERSION}\` and \`deno install --allow-scripts\`, or use --backend fast-cpu`,
      );
    } else {
      const fast = await registerFastCpu();
      notes.push(...fast.notes);
      choice = {
        name: "fast-cpu",
        // webgpu is taken by name only: on an H200 it ran 3x slower than fast-cpu on that
        // machine's CPU (docs/gpu.md), so auto would make a GPU owner's runs slower
        reason: "auto: libtensorflow not installed (webgpu only by name: docs/gpu.md)",
        kernels: fast.kernels,
      };
    }
  } else if (requested === "webgpu") {
    gpu = await requireGpu();
    if (gpu.fallback) notes.push(`${gpu.facts.description} is a software GPU: slow, for tests`);
    choice = await webgpuChoice(gpu, "requested", notes);
  } else if (requested === "fast-cpu") {
    const fast = await registerFastCpu();
    notes.push(...fast.notes);
    choice = { name: "fast-cpu", reason: "requested", kernels: fast.kernels };
  } else if (requested === "wasm") {
    await registerWasm();
    choice = { name: "wasm", reason: "requested" };
  } else {
    choice = { name: "cpu", reason: "requested" };
  }
  setTrainingGpu(gpu);
  const tensors = choice.name === "webgpu" ? "fast-cpu" : choice.name;
  if (!(await tf.setBackend(tensors))) {
    throw new StageError(`backend ${choice.name} failed to initialise`);
  }
  const active: BackendChoice = {
    name: choice.name,
    reason: choice.reason,
    notes,
    runtime: {
      facts: {
        backend: choice.kernels ? `${choice.name}/${choice.kernels}` : choice.name,
        tfjs: TFJS_VERSION,
        denormals: fp.denormals,
      },
      // this module's import graph holds every backend's kernels: it is code of tensor stages
      modules: [import.meta.url],
    },
  };
  chosen.set(key, active);
  return active;
}
