/** Flush-to-zero: effective in JS, in the SIMD Adam and in BLAS's own threads; in the key. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { selectBackend } from "../stages/backends/mod.ts";
import { denormalsFlushInJs, fenvLayout, flushDenormals } from "../stages/backends/ftz.ts";
import { SimdAdamArena, simdAvailable } from "../stages/backends/adam_simd.ts";
import { cli, ROOT, tinyConfig, writeConfig, writeIdxFiles } from "./helpers.ts";

const supported = typeof fenvLayout() !== "string";

/** Runs TypeScript in a fresh process (the mode is fixed once BLAS starts its threads). */
async function fresh(code: string): Promise<Record<string, unknown>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", code],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
}

Deno.test({
  name: "a denormal product is 0 in JS typed-array code with FTZ, and not without",
  ignore: !supported,
  fn() {
    assert.equal(flushDenormals(false).mode, "off");
    assert.equal(denormalsFlushInJs(), false);
    assert.equal(flushDenormals(true).mode, "on");
    assert.equal(denormalsFlushInJs(), true);
  },
});

Deno.test({
  name: "the SIMD Adam flushes a denormal moment to 0 with FTZ, and keeps it without",
  ignore: !supported || !simdAvailable(),
  fn() {
    // the moments' stored bits: read as floats under DAZ, a denormal would read as 0
    const step = () => {
      const arena = new SimdAdamArena([4]);
      arena.g[0].fill(1e-37); // a normal float; (1 - b1) * g = 1e-38 is denormal
      arena.step(0, { lrT: 0, b1: 0.9, b2: 0.999, eps: 1e-7, corr2: 1 });
      const m = arena.m[0];
      return Array.from(new Uint32Array(m.buffer, m.byteOffset, m.length));
    };
    flushDenormals(false);
    const ieee = step();
    flushDenormals(true);
    const flushed = step();
    // a positive denormal float32 has exponent bits 0 and a non-zero fraction
    assert.ok(ieee.every((b) => b > 0 && b < 0x00800000), `IEEE bits: ${ieee}`);
    assert.deepEqual(flushed, [0, 0, 0, 0]);
  },
});

const SGEMM_CODE = (flush: boolean) => `
  import { selectBackend } from "./stages/backends/mod.ts";
  import { loadBlas } from "./stages/backends/blas.ts";
  const b = await selectBackend("fast-cpu", { flushDenormals: ${flush} });
  const blas = loadBlas();
  // 512x512 outputs, each a sum of 64 products of 1e-20 * 1e-20 = 1e-40 (denormal): large
  // enough that OpenBLAS splits it over its threads
  const m = 512, k = 64;
  const a = new Float32Array(m * k).fill(1e-20), c = new Float32Array(m * m);
  blas.sgemm(false, true, m, m, k, a, k, a, k, c, m);
  let zeros = 0;
  for (const x of c) zeros += +(x === 0);
  console.log(JSON.stringify({ runtime: b.runtime.facts, kind: blas.kind, threads: blas.threads, zeros, first: c[0], last: c[c.length - 1] }));`;

Deno.test({
  name: "sgemm results from OpenBLAS's own threads flush with FTZ, and not without",
  ignore: !supported,
  async fn() {
    const on = await fresh(SGEMM_CODE(true));
    const off = await fresh(SGEMM_CODE(false));
    assert.equal((on.runtime as { denormals: string }).denormals, "flush");
    assert.equal((off.runtime as { denormals: string }).denormals, "ieee");
    assert.notEqual(
      (on.runtime as { backend: string }).backend,
      undefined,
    );
    if (on.kind !== "blas") return; // the TypeScript matmul runs on the main thread: covered above
    assert.equal(on.zeros, 512 * 512, `threads ${on.threads}: every output row flushed`);
    assert.equal(off.zeros, 0);
    assert.ok((off.first as number) > 6e-39 && (off.last as number) > 6e-39);
  },
});

Deno.test("asking for the other mode after BLAS started is refused, not half-applied", async () => {
  await selectBackend("fast-cpu");
  await assert.rejects(
    () => selectBackend("fast-cpu", { flushDenormals: false }),
    /flushDenormals=false was asked for after this process started BLAS/,
  );
  await selectBackend("cpu");
});

Deno.test("flushDenormals is in the cache key and run.json; results agree within 1e-4 either way", async () => {
  const dir = await Deno.makeTempDir();
  const files = await writeIdxFiles(dir);
  const cfg = await writeConfig(
    dir,
    "tiny.json",
    tinyConfig(files, { backend: "fast-cpu", adversarial: { iterations: 6, checkpointEvery: 3 } }),
  );
  const results = join(dir, "results");
  const on = await cli(["run", cfg, "--results", results, "--until", "adversarial", "--quiet"]);
  assert.equal(on.code, 0, on.stderr);
  const explain = await cli([
    "run",
    cfg,
    "--results",
    results,
    "--set",
    "flushDenormals=false",
    "--explain",
  ]);
  assert.equal(explain.code, 0, explain.stderr);
  assert.match(explain.stdout, /train_police\s+\S+\s+runs because denormals changed/);
  assert.match(explain.stdout, /preprocess\s+\S+\s+cached/); // no tensors: shared
  const off = await cli([
    "run",
    cfg,
    "--results",
    results,
    "--set",
    "flushDenormals=false",
    "--until",
    "adversarial",
    "--quiet",
  ]);
  assert.equal(off.code, 0, off.stderr);
  const history = async (runDir: string) => {
    const rec = JSON.parse(await Deno.readTextFile(join(runDir.trim(), "run.json")));
    const key = rec.stages.find((s: { stage: string }) => s.stage === "adversarial").key;
    const h = JSON.parse(
      await Deno.readTextFile(join(results, "cache", "adversarial", key, "history.json")),
    );
    return { rec, key, h };
  };
  const a = await history(on.stdout.trim().split("\n").at(-1)!);
  const b = await history(off.stdout.trim().split("\n").at(-1)!);
  assert.equal(a.rec.environment.runtime.denormals, "flush");
  assert.equal(b.rec.environment.runtime.denormals, "ieee");
  assert.notEqual(a.key, b.key);
  for (let i = 0; i < a.h.length; i++) {
    for (const f of ["dRealAfterPolice", "dFakeAfterCounterfeiter", "policeLoss"]) {
      assert.ok(Math.abs(a.h[i][f] - b.h[i][f]) < 1e-4, `${f} at ${i}: ${a.h[i][f]} ${b.h[i][f]}`);
    }
  }
});
