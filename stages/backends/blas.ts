/**
 * Single-precision matrix multiply for the fast-cpu backend: `cblas_sgemm` from a BLAS
 * library through Deno FFI (OpenBLAS from Debian/Ubuntu, Apple Accelerate on macOS, or the
 * path in `GAN_BLAS_LIB`), or, when none loads, a blocked typed-array loop in TypeScript.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadBlas } from "./blas.ts";
 * const blas = loadBlas();
 * const c = new Float32Array(1);
 * blas.sgemm(false, false, 1, 1, 2, new Float32Array([1, 2]), 2, new Float32Array([3, 4]), 1, c, 1);
 * assert(c[0] === 11);
 * ```
 */

import { cpuFlags } from "./cpu_info.ts";

/** C = op(A) * op(B) (row-major; `beta` 0 overwrites C). */
export type Sgemm = (
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  lda: number,
  b: Float32Array,
  ldb: number,
  c: Float32Array,
  ldc: number,
) => void;

/** A matmul implementation and where it came from. */
export interface Blas {
  /** "blas" (a library through FFI) or "js" (the TypeScript fallback). */
  kind: "blas" | "js";
  /** The library path, or why none loaded. */
  source: string;
  /**
   * OpenBLAS's thread count: its results differ in the last bits between thread counts
   * (measured), so it is part of the cache key. Null where the library does not say.
   */
  threads: number | null;
  /**
   * The CPU kernel OpenBLAS picked at load time (`openblas_get_corename()`: Haswell,
   * SkylakeX, Zen, ...). Each rounds differently, so it is part of the cache key too. Null
   * where the library does not say (Accelerate, the TypeScript fallback).
   */
  core: string | null;
  /**
   * The library's release (`openblas_get_config()`: "0.3.21"), null where it does not say.
   * Releases round differently with the same kernel family (measured: OpenBLAS 0.3.21 and
   * 0.3.29 with their Haswell kernels differ in 22% of a 32x784x1024 product's elements), so
   * it is part of the cache key: a cluster whose nodes have different OpenBLAS releases must
   * not share one release's numbers as another's.
   */
  version: string | null;
  /** Why a CPU kernel other than the library's own pick is in use, if one is. */
  note?: string;
  sgemm: Sgemm;
}

/** OpenBLAS cores from before AVX2: its fallbacks for CPUs newer than the library. */
const PRE_AVX2_CORES = new Set(
  [
    "prescott",
    "core2",
    "penryn",
    "dunnington",
    "nehalem",
    "atom",
    "sandybridge",
    "katmai",
    "coppermine",
    "northwood",
    "banias",
    "barcelona",
    "opteron",
    "opteron_sse3",
    "bobcat",
  ],
);

/** OpenBLAS cores whose sgemm is AVX2 (Zen uses the Haswell kernels). */
const AVX2_CORES = new Set(["haswell", "zen"]);

/** The AVX-512 subsets OpenBLAS's SkylakeX kernels use. */
const AVX512 = ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"];

/**
 * The OpenBLAS core to ask for instead of `picked`, or null to keep it: the fastest family the
 * CPU's flags say it runs. OpenBLAS (0.3.21 in Debian 12) does not know CPUs newer than itself:
 * on a Xeon of model 207 it picked Prescott (SSE3), 3-4x slower than its SkylakeX (AVX-512)
 * kernels. (On an AMD EPYC of family 26, Zen 5, its own pick is Cooperlake, AVX-512; forced
 * there, SkylakeX ran sgemm 1000x784x1024 at 334 GFLOP/s against Haswell's 185 and the
 * baseline's loop in 165.6 s against 196.6 s: an AVX2 family costs that much.) So: AVX-512 F/CD/BW/DQ/VL and a pick without it -> SkylakeX; AVX2 and
 * FMA and a pick older than AVX2 -> Haswell. A pick with AVX-512 already (SkylakeX,
 * Cooperlake, SapphireRapids) stays.
 */
export function betterCore(picked: string, cpuFlags: Set<string>): string | null {
  const p = picked.toLowerCase();
  const avx512 = AVX512.every((f) => cpuFlags.has(f));
  if (avx512 && (PRE_AVX2_CORES.has(p) || AVX2_CORES.has(p))) return "SkylakeX";
  if (PRE_AVX2_CORES.has(p) && cpuFlags.has("avx2") && cpuFlags.has("fma")) return "Haswell";
  return null;
}

/**
 * Loads OpenBLAS from `path`; if it picked a kernel older than the CPU (see
 * {@link betterCore}) and the user has not chosen one with OPENBLAS_CORETYPE, loads it again
 * with the better one.
 */
function loadWithBestCore(path: string): Omit<Blas, "kind" | "source"> | null {
  const first = tryLoad(path);
  const keep = (l: NonNullable<typeof first>) => ({
    sgemm: l.sgemm,
    threads: l.threads,
    core: l.core,
    version: l.version,
  });
  if (!first) return null;
  if (!first.core) return keep(first);
  const forced = Deno.env.get("OPENBLAS_CORETYPE");
  if (forced !== undefined) {
    return {
      ...keep(first),
      note: `OpenBLAS's ${first.core} kernels, as OPENBLAS_CORETYPE=${forced} asks`,
    };
  }
  const want = betterCore(first.core, cpuFlags());
  if (!want) {
    return {
      ...keep(first),
      note:
        `OpenBLAS's own pick for this CPU, its ${first.core} kernels, already uses the widest vectors the CPU's flags show; kept`,
    };
  }
  first.close();
  Deno.env.set("OPENBLAS_CORETYPE", want);
  const second = tryLoad(path);
  if (!second) return null;
  return {
    ...keep(second),
    note:
      `OpenBLAS picked its ${first.core} kernels for this CPU, which it does not know; using its faster ${second.core} kernels (the CPU has ${
        want === "SkylakeX" ? "AVX-512 F/CD/BW/DQ/VL" : "AVX2 and FMA"
      }; set OPENBLAS_CORETYPE to choose)`,
  };
}

const ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112;

/** Library paths tried in order, after `GAN_BLAS_LIB`. */
export function blasCandidates(): string[] {
  const arch = Deno.build.arch === "aarch64" ? "aarch64" : "x86_64";
  if (Deno.build.os === "darwin") {
    return [
      "/System/Library/Frameworks/Accelerate.framework/Accelerate",
      "/opt/homebrew/opt/openblas/lib/libopenblas.dylib",
      "/usr/local/opt/openblas/lib/libopenblas.dylib",
    ];
  }
  return [
    `/usr/lib/${arch}-linux-gnu/openblas-pthread/libopenblas.so.0`,
    `/usr/lib/${arch}-linux-gnu/libopenblas.so.0`,
    "libopenblas.so.0",
    `/usr/lib/${arch}-linux-gnu/openblas-openmp/libopenblas.so.0`,
  ];
}

/**
 * The release in OpenBLAS's build string ("OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ..." ->
 * "0.3.21"; a development build's "0.3.30.dev" kept whole), or null where it names none.
 */
export function openblasVersion(config: string): string | null {
  const m = /^\s*OpenBLAS\s+(\d[\w.-]*)/.exec(config);
  return m ? m[1] : null;
}

function tryLoad(
  path: string,
): {
  sgemm: Sgemm;
  threads: number | null;
  core: string | null;
  version: string | null;
  close: () => void;
} | null {
  try {
    const lib = Deno.dlopen(path, {
      openblas_get_num_threads: { parameters: [], result: "i32", optional: true },
      openblas_get_corename: { parameters: [], result: "pointer", optional: true },
      openblas_get_config: { parameters: [], result: "pointer", optional: true },
      cblas_sgemm: {
        parameters: [
          "i32",
          "i32",
          "i32",
          "i32",
          "i32",
          "i32",
          "f32",
          "buffer",
          "i32",
          "buffer",
          "i32",
          "f32",
          "buffer",
          "i32",
        ],
        result: "void",
      },
    });
    const f = lib.symbols.cblas_sgemm;
    const threads = lib.symbols.openblas_get_num_threads?.() ?? null;
    const corePtr = lib.symbols.openblas_get_corename?.() ?? null;
    const core = corePtr ? Deno.UnsafePointerView.getCString(corePtr).trim() || null : null;
    const configPtr = lib.symbols.openblas_get_config?.() ?? null;
    const version = configPtr
      ? openblasVersion(Deno.UnsafePointerView.getCString(configPtr))
      : null;
    const sgemm: Sgemm = (ta, tb, m, n, k, a, lda, b, ldb, c, ldc) => {
      if (m === 0 || n === 0) return;
      if (k === 0) {
        c.fill(0, 0, m * ldc);
        return;
      }
      f(
        ROW_MAJOR,
        ta ? TRANS : NO_TRANS,
        tb ? TRANS : NO_TRANS,
        m,
        n,
        k,
        1,
        a,
        lda,
        b,
        ldb,
        0,
        c,
        ldc,
      );
    };
    return { sgemm, threads, core, version, close: () => lib.close() };
  } catch {
    return null;
  }
}

/** The TypeScript fallback: i-k-j loops over a transposed-as-needed copy, blocked over k. */
export const sgemmJs: Sgemm = (ta, tb, m, n, k, a, lda, b, ldb, c, ldc) => {
  // Bring A to row-major [m,k] and B to row-major [k,n] so the inner loop is contiguous.
  let A = a, aStride = lda;
  if (ta) {
    A = new Float32Array(m * k);
    for (let p = 0; p < k; p++) for (let i = 0; i < m; i++) A[i * k + p] = a[p * lda + i];
    aStride = k;
  }
  let B = b, bStride = ldb;
  if (tb) {
    B = new Float32Array(k * n);
    for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) B[p * n + j] = b[j * ldb + p];
    bStride = n;
  }
  for (let i = 0; i < m; i++) c.fill(0, i * ldc, i * ldc + n);
  const KB = 64;
  for (let p0 = 0; p0 < k; p0 += KB) {
    const p1 = Math.min(k, p0 + KB);
    for (let i = 0; i < m; i++) {
      const ci = i * ldc, ai = i * aStride;
      for (let p = p0; p < p1; p++) {
        const av = A[ai + p];
        if (av === 0) continue;
        const bp = p * bStride;
        for (let j = 0; j < n; j++) c[ci + j] += av * B[bp + j];
      }
    }
  }
};

let cached: Blas | null = null;

/** Whether a BLAS library has been loaded in this process (its threads exist from then on). */
export function blasLoaded(): boolean {
  return cached !== null;
}

/**
 * Loads a BLAS library once; falls back to {@link sgemmJs} with the reason. Set the
 * floating-point mode (`ftz.ts`) before the first call: OpenBLAS starts its threads here and
 * they keep the mode they were created with.
 */
export function loadBlas(opts: { allowFfi?: boolean } = {}): Blas {
  if (cached && opts.allowFfi !== false) return cached;
  if (opts.allowFfi === false) {
    return {
      kind: "js",
      source: "BLAS disabled",
      sgemm: sgemmJs,
      threads: null,
      core: null,
      version: null,
    };
  }
  // OpenBLAS's idle threads spin for a long while after each call, taking the core the
  // elementwise kernels between matmuls need; a short timeout measured 15% faster here.
  if (Deno.env.get("OPENBLAS_THREAD_TIMEOUT") === undefined) {
    Deno.env.set("OPENBLAS_THREAD_TIMEOUT", "4");
  }
  const env = Deno.env.get("GAN_BLAS_LIB");
  const tried: string[] = [];
  for (const path of env ? [env, ...blasCandidates()] : blasCandidates()) {
    const f = loadWithBestCore(path);
    if (f) return (cached = { kind: "blas", source: path, ...f });
    tried.push(path);
  }
  const hint = Deno.build.os === "darwin"
    ? "brew install openblas"
    : "apt-get install libopenblas0-pthread";
  cached = {
    kind: "js",
    source: `no BLAS library loaded (tried ${tried.length} paths; ${hint}, or set GAN_BLAS_LIB)`,
    sgemm: sgemmJs,
    threads: null,
    core: null,
    version: null,
  };
  return cached;
}
