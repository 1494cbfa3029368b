/**
 * Flush-to-zero: makes the CPU treat denormal floats (below 1.2e-38 in float32) as zero, in
 * results (FTZ) and in inputs (DAZ). Late in training many gradients and Adam moments
 * drift into that range, and on Intel cores each denormal operation costs ~100 cycles: the
 * baseline ran 2.2x slower on a Xeon without this (measured). TensorFlow's CPU kernels flush
 * denormals by default, so the lecture ran this way too.
 *
 * The mode is per thread and inherited by threads created after it is set, so it must be set
 * on the main thread before the BLAS library starts its thread pool (see `loadBlas`). It then
 * covers JS typed-array code, WebAssembly (V8 runs both on the same SSE/NEON units) and
 * BLAS's own threads.
 *
 * Where it is set:
 * - Linux and macOS on x86-64: MXCSR bits FTZ (15) and DAZ (6), through libm's `fegetenv` /
 *   `fesetenv` (glibc keeps `__mxcsr` at byte 28 of its 32-byte `fenv_t`, macOS at byte 4).
 * - Linux and macOS on aarch64: FPCR.FZ (bit 24), which flushes inputs and outputs alike
 *   (glibc's `fenv_t` is {fpcr, fpsr} as 32-bit words; macOS's is {fpsr, fpcr} as 64-bit).
 * - Anywhere else, or if libm cannot be opened: nothing changes and {@link FtzState.mode}
 *   says `unsupported`, which is what goes into the cache key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { flushDenormals } from "./ftz.ts";
 * const s = flushDenormals(true);
 * assert(["on", "off", "unsupported"].includes(s.mode));
 * ```
 */

/** What {@link flushDenormals} did. */
export interface FtzState {
  /** `on`: denormals flush to zero; `off`: IEEE denormals; `unsupported`: could not be set. */
  mode: "on" | "off" | "unsupported";
  /** Why it is unsupported, or how it was set. */
  detail: string;
}

interface Layout {
  lib: string;
  /** Byte offset and width of the control word inside `fenv_t`. */
  offset: number;
  width: 4 | 8;
  bits: bigint;
}

/** The `fenv_t` layout of this platform, or why there is none we know. */
export function fenvLayout(
  os: string = Deno.build.os,
  arch: string = Deno.build.arch,
): Layout | string {
  if (os === "linux" && arch === "x86_64") {
    return { lib: "libm.so.6", offset: 28, width: 4, bits: 0x8040n };
  }
  if (os === "linux" && arch === "aarch64") {
    return { lib: "libm.so.6", offset: 0, width: 4, bits: 1n << 24n };
  }
  if (os === "darwin" && arch === "x86_64") {
    return { lib: "/usr/lib/libSystem.B.dylib", offset: 4, width: 4, bits: 0x8040n };
  }
  if (os === "darwin" && arch === "aarch64") {
    return { lib: "/usr/lib/libSystem.B.dylib", offset: 8, width: 8, bits: 1n << 24n };
  }
  return `no known floating-point control layout for ${os}/${arch}`;
}

let current: FtzState | null = null;

/**
 * Turns flushing of denormals on or off for this thread and the threads it creates later.
 * Returns what it did; never throws.
 */
export function flushDenormals(on: boolean): FtzState {
  const layout = fenvLayout();
  if (typeof layout === "string") return (current = { mode: "unsupported", detail: layout });
  let lib;
  try {
    lib = Deno.dlopen(layout.lib, {
      fegetenv: { parameters: ["buffer"], result: "i32" },
      fesetenv: { parameters: ["buffer"], result: "i32" },
    });
  } catch (e) {
    return (current = {
      mode: "unsupported",
      detail: `cannot open ${layout.lib}: ${(e as Error).message.split("\n")[0]}`,
    });
  }
  try {
    const env = new Uint8Array(64); // larger than any fenv_t we know
    if (lib.symbols.fegetenv(env) !== 0) {
      return (current = { mode: "unsupported", detail: "fegetenv failed" });
    }
    const view = new DataView(env.buffer);
    const read = () =>
      layout.width === 4
        ? BigInt(view.getUint32(layout.offset, true))
        : view.getBigUint64(layout.offset, true);
    const word = on ? read() | layout.bits : read() & ~layout.bits;
    if (layout.width === 4) view.setUint32(layout.offset, Number(word), true);
    else view.setBigUint64(layout.offset, word, true);
    if (lib.symbols.fesetenv(env) !== 0) {
      return (current = { mode: "unsupported", detail: "fesetenv failed" });
    }
    return (current = {
      mode: on ? "on" : "off",
      detail: `${Deno.build.os}/${Deno.build.arch} control word 0x${word.toString(16)}`,
    });
  } finally {
    lib.close();
  }
}

/** The last state set by {@link flushDenormals} in this process, or null if never called. */
export function denormalMode(): FtzState | null {
  return current;
}

/**
 * Whether denormals actually flush on this thread now: multiplies two float32 values whose
 * product is denormal (1e-20 * 1e-20 = 1e-40) in JS typed-array code.
 */
export function denormalsFlushInJs(): boolean {
  const a = new Float32Array([1e-20, 1e-20, 0]);
  a[2] = a[0] * a[1];
  return a[2] === 0;
}
