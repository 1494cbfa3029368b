/**
 * Choosing and setting up the tensor engine. `auto` tries `tensorflow` (tfjs-node-gpu, then
 * tfjs-node: native libtensorflow, when the user has installed it), then `fast-cpu`. An
 * explicitly requested backend that is unavailable is an error that says how to get it.
 *
 * @example
 * ```ts
 * import { selectBackend } from "./mod.ts";
 * const choice = await selectBackend("cpu");
 * console.assert(choice.name === "cpu");
 * ```
 */
import { createRequire } from "node:module";
import { dirname } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { StageError } from "../errors.ts";
import type { RuntimeFacts } from "../stage.ts";
import { registerFastCpu } from "./fast_cpu.ts";

/** A backend name as the config and CLI accept it. */
export type BackendName = "auto" | "tensorflow" | "fast-cpu" | "wasm" | "cpu";

/** The outcome of {@link selectBackend}. */
export interface BackendChoice {
  /** The backend in use. */
  name: Exclude<BackendName, "auto">;
  /** Why it was chosen (for the first log line and the run record). */
  reason: string;
  /** Notes on what was tried and not found. */
  notes: string[];
  /** The facts that go into tensor stages' cache keys. */
  runtime: RuntimeFacts;
}

/** The tfjs version the pipeline was built with. */
export const TFJS_VERSION: string = tf.version_core;

const chosen = new Map<BackendName, BackendChoice>();

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

/** Selects, initialises and returns the backend. Safe to call more than once. */
export async function selectBackend(requested: BackendName): Promise<BackendChoice> {
  const known = chosen.get(requested);
  if (known) {
    await tf.setBackend(known.name);
    return known;
  }
  tf.enableProdMode(); // no debug checks, and no banner noise
  const notes: string[] = [];
  let choice: Pick<BackendChoice, "name" | "reason"> & { kernels?: string };
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
        reason: "auto: libtensorflow not installed",
        kernels: fast.kernels,
      };
    }
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
  if (!(await tf.setBackend(choice.name))) {
    throw new StageError(`backend ${choice.name} failed to initialise`);
  }
  const active: BackendChoice = {
    name: choice.name,
    reason: choice.reason,
    notes,
    runtime: {
      backend: choice.kernels ? `${choice.name}/${choice.kernels}` : choice.name,
      tfjs: TFJS_VERSION,
    },
  };
  chosen.set(requested, active);
  return active;
}
