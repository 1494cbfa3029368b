/**
 * What the CPU is: its model name for run records and benchmarks, and its feature flags for
 * picking BLAS kernels. Linux keeps both in /proc/cpuinfo, which Deno only lets a program
 * with --allow-all read; the backend already holds --allow-ffi, so where the plain read is
 * refused the file is read through libc's open/read instead.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cpuFlags, cpuModel } from "./cpu_info.ts";
 * assert(typeof cpuModel() === "string" && cpuFlags() instanceof Set);
 * ```
 */

let text: string | null | undefined;

function readThroughLibc(path: string): string | null {
  if (Deno.build.os !== "linux") return null;
  let lib;
  try {
    lib = Deno.dlopen("libc.so.6", {
      open: { parameters: ["buffer", "i32"], result: "i32" },
      read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
      close: { parameters: ["i32"], result: "i32" },
    });
  } catch {
    return null;
  }
  try {
    const fd = lib.symbols.open(new TextEncoder().encode(path + "\0"), 0);
    if (fd < 0) return null;
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = Number(lib.symbols.read(fd, buf, BigInt(buf.length)));
      if (n <= 0) break;
      chunks.push(buf.slice(0, n));
    }
    lib.symbols.close(fd);
    const all = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
    let at = 0;
    for (const c of chunks) {
      all.set(c, at);
      at += c.length;
    }
    return new TextDecoder().decode(all);
  } finally {
    lib.close();
  }
}

/** The text of /proc/cpuinfo, or null where there is none or it cannot be read. */
export function cpuinfo(): string | null {
  if (text !== undefined) return text;
  try {
    text = Deno.readTextFileSync("/proc/cpuinfo");
  } catch {
    try {
      text = readThroughLibc("/proc/cpuinfo");
    } catch {
      text = null;
    }
  }
  return text;
}

/**
 * The CPU's model name and core count, e.g. `Intel(R) Xeon(R) Processor (2 CPUs)`. Not part
 * of cache keys: only the BLAS kernel (in the backend fact) rounds differently per CPU.
 */
export function cpuModel(): string {
  const m = cpuinfo()?.match(/^model name\s*:\s*(.+)$/m);
  return `${m ? m[1].trim() : Deno.build.arch} (${navigator.hardwareConcurrency} CPUs)`;
}

/** The CPU's feature flags (Linux x86: `avx2`, `avx512f`, ...), or none where unknown. */
export function cpuFlags(): Set<string> {
  const m = cpuinfo()?.match(/^flags\s*:\s*(.*)$/m);
  return new Set(m ? m[1].trim().split(/\s+/) : []);
}
