/**
 * The WebGPU device the `webgpu` backend trains on: found through Deno's built-in
 * `navigator.gpu` (Vulkan on Linux, Metal on macOS, DX12 on Windows), described for the
 * cache key, and held for the process. Only a `webgpu` asked for by name uses it, a software
 * adapter (lavapipe, SwiftShader, WARP) included; `auto` does not (slower than fast-cpu so far).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { adapterName } from "./webgpu.ts";
 * const info = { vendor: "nvidia", architecture: "hopper", device: "", description: "NVIDIA H200" };
 * assert.equal(adapterName(info), "nvidia-hopper-NVIDIA_H200");
 * assert.equal(adapterName({ ...info, driver: "580.65" }), "nvidia-hopper-NVIDIA_H200-driver_580.65");
 * ```
 */
import { StageError } from "../../pipeline/errors.ts";

/** What the key and the run record say about an adapter. */
export interface AdapterFacts {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** The driver's version where the system tells it (WebGPU itself does not). */
  driver?: string;
}

/** A WebGPU device held for the process, with what is known about it. */
export interface GpuDevice {
  readonly device: GPUDevice;
  readonly facts: AdapterFacts;
  /** Whether the adapter is a software one (lavapipe and the like). */
  readonly fallback: boolean;
  /** Why the device stopped, once it has (null while it is usable). */
  lost: string | null;
}

/** The adapter in a form a cache key and a file name take: no spaces, no slashes. */
export function adapterName(f: AdapterFacts): string {
  return [f.vendor, f.architecture, f.description || f.device, f.driver ? `driver ${f.driver}` : ""]
    .filter((s) => s !== "")
    .map((s) => s.trim().replace(/[^A-Za-z0-9._()+-]+/g, "_"))
    .join("-");
}

/** What to do when there is no usable adapter, per platform. */
export const NO_ADAPTER_FIX =
  "install a Vulkan driver (Debian: apt-get install mesa-vulkan-drivers for a software GPU, or your GPU vendor's driver), or use --backend fast-cpu";

/**
 * Mesa's Vulkan drivers print "XDG_RUNTIME_DIR is invalid" to stderr when it is unset
 * (headless machines, CI), though compute never needs it: a private folder keeps them quiet.
 */
function quietMesa(): void {
  try {
    if (Deno.build.os === "linux" && !Deno.env.get("XDG_RUNTIME_DIR")) {
      Deno.env.set("XDG_RUNTIME_DIR", Deno.makeTempDirSync({ prefix: "gan-xdg-" }));
    }
  } catch {
    // without write or env permission the warning prints; nothing else changes
  }
}

/** The adapter, or null where WebGPU finds none. */
async function findAdapter(): Promise<GPUAdapter | null> {
  if (typeof navigator === "undefined" || !("gpu" in navigator)) return null;
  quietMesa();
  try {
    return await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  } catch {
    return null;
  }
}

/**
 * The driver version where the system says it: NVIDIA's kernel module names it in /proc
 * (WebGPU's adapter info has no driver field; lavapipe's description names its LLVM).
 */
function driverOf(vendor: string, description: string): string | undefined {
  if (!/nvidia|^4318$/i.test(vendor) && !/nvidia/i.test(description)) return undefined;
  try {
    const v = Deno.readTextFileSync("/proc/driver/nvidia/version");
    return v.match(/Kernel Module\s+(?:for \S+\s+)?([0-9][0-9.]+)/)?.[1];
  } catch {
    return undefined;
  }
}

function factsOf(a: GPUAdapter): { facts: AdapterFacts; fallback: boolean } {
  const i = a.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const legacy = (a as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter;
  const facts: AdapterFacts = {
    vendor: i.vendor ?? "",
    architecture: i.architecture ?? "",
    device: i.device ?? "",
    description: i.description ?? "",
  };
  const driver = driverOf(facts.vendor, facts.description);
  if (driver) facts.driver = driver;
  return { facts, fallback: Boolean(i.isFallbackAdapter ?? legacy) };
}

let held: Promise<GpuDevice | null> | null = null;
/** Whether {@link held} looked for a software adapter too. */
let heldAllowFallback = false;

/**
 * The process's device: a real GPU, or with `allowFallback` a software one too; null when
 * none qualifies. The device asks for the adapter's largest storage buffer, since the
 * training path keeps its state in one.
 */
export function acquireGpu(allowFallback: boolean): Promise<GpuDevice | null> {
  if (!held || (allowFallback && !heldAllowFallback)) {
    // a real GPU found before serves a later call that would take a software one too
    const before = held;
    heldAllowFallback = allowFallback;
    held = (async () => (await before) ?? openGpu(allowFallback))();
  }
  return held.then((d) => (d && d.fallback && !allowFallback ? null : d));
}

/**
 * A new device of its own (the process's is {@link acquireGpu}'s): a real GPU, or with
 * `allowFallback` a software one too; null when none qualifies.
 */
export async function openGpu(allowFallback: boolean): Promise<GpuDevice | null> {
  const adapter = await findAdapter();
  if (!adapter) return null;
  const { facts, fallback } = factsOf(adapter);
  if (fallback && !allowFallback) return null;
  const lim = adapter.limits;
  const device = await adapter.requestDevice({
    // GPU timings for `bench --gpu-profile`, where the adapter has them
    requiredFeatures: adapter.features.has("timestamp-query") ? ["timestamp-query"] : [],
    requiredLimits: {
      maxStorageBufferBindingSize: lim.maxStorageBufferBindingSize,
      maxBufferSize: lim.maxBufferSize,
    },
  });
  const gpu: GpuDevice = { device, facts, fallback, lost: null };
  device.lost.then((info) => {
    gpu.lost = `${info.reason}${info.message ? `: ${info.message}` : ""}`;
  });
  return gpu;
}

/** The device a `webgpu` run asked for, or a one-line error naming the fix. */
export async function requireGpu(): Promise<GpuDevice> {
  const gpu = await acquireGpu(true);
  if (!gpu) {
    throw new StageError(`backend "webgpu": no WebGPU adapter found; ${NO_ADAPTER_FIX}`);
  }
  return gpu;
}

let active: GpuDevice | null = null;

/** Makes `gpu` the device new GANs train on (null: train on the host). */
export function setTrainingGpu(gpu: GpuDevice | null): void {
  active = gpu;
}

/** The device new GANs train on, if the backend is `webgpu`. */
export function trainingGpu(): GpuDevice | null {
  return active;
}
