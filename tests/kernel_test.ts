/**
 * A forced OpenBLAS kernel family gives the bits that family gives on another CPU, so the
 * cache key is right to name the family, not the CPU model. The figure: the MLP evaluator of
 * the baseline config (MNIST, 8 epochs) reaches test accuracy 0.9802 with the SkylakeX kernels
 * on an Intel Xeon (model 207) and on an AMD EPYC of family 26 (Zen 5); here it runs on whatever
 * CPU the tests run on, with OPENBLAS_CORETYPE=SkylakeX. (Measured on an AMD EPYC family 25,
 * Zen 4: 0.9802 with SkylakeX forced, 0.9810 with its own Cooperlake pick, 0.9787 with Haswell.)
 * Needs a CPU with AVX-512 and OpenBLAS; skipped, saying so, elsewhere.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadBlas } from "../stages/backends/blas.ts";
import { cpuFlags } from "../stages/backends/cpu_info.ts";
import { cli, ROOT } from "./helpers.ts";

const AVX512 = ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"];
const canRun = AVX512.every((f) => cpuFlags().has(f)) && loadBlas().core !== null;
if (!canRun) {
  console.error(
    "kernel_test: no AVX-512 or no OpenBLAS here: the SkylakeX kernels cannot run; skipping",
  );
}

Deno.test({
  name: "with OPENBLAS_CORETYPE=SkylakeX the evaluator gives the Xeon's and Zen 5's 0.9802",
  ignore: !canRun,
  fn: async () => {
    const results = await Deno.makeTempDir();
    const r = await cli([
      "run",
      join(ROOT, "configs/baseline.json"),
      "--results",
      results,
      "--until",
      "evaluator",
      "--set",
      "adversarial.iterations=1",
      // the MLP evaluator, which the recorded figure is of (and a fraction of the conv's cost)
      "--set",
      "evaluator.kind=mlp",
    ], { env: { OPENBLAS_CORETYPE: "SkylakeX" } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /OpenBLAS's SkylakeX kernels, as OPENBLAS_CORETYPE=SkylakeX asks/);
    const runDir = r.stdout.trim().split("\n").at(-1)!;
    const record = JSON.parse(await Deno.readTextFile(join(runDir, "run.json")));
    const ev = record.stages.find((s: { stage: string }) => s.stage === "evaluator");
    assert.match(ev.inputs.runtime.backend, /openblas-(?:\d[\w.]*-)?SkylakeX-t\d/);
    assert.equal(ev.summary.testAccuracy, 0.9802);
    await Deno.remove(results, { recursive: true });
  },
});
