/**
 * Keys pick what a stage reads, no less and no more. Each stage runs with a config that
 * records every field its `run` and `outputs` read; a field is in its key when changing it
 * changes the stage's pick. A field read but not keyed would return stale numbers; a field
 * keyed but never read reruns the stage for nothing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { canonicalJson } from "../pipeline/hash.ts";
import { Progress } from "../pipeline/progress.ts";
import { runPipeline } from "../pipeline/runner.ts";
import type { Stage } from "../pipeline/stage.ts";
import { selectBackend } from "../stages/backends/mod.ts";
import { STAGES } from "../stages/app.ts";
import type { Config } from "../stages/schema.ts";
import { configOf, tinyConfig, writeIdxFiles } from "./helpers.ts";

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** A view of `obj` that adds the path of every leaf read (arrays count as leaves). */
function tracked<T extends Obj>(obj: T, reads: Set<string>, path = ""): T {
  return new Proxy(obj, {
    get(target, k, receiver) {
      const v = Reflect.get(target, k, receiver);
      if (typeof k === "symbol" || !Object.hasOwn(target, k)) return v;
      const p = path ? `${path}.${k}` : k;
      if (isObj(v)) return tracked(v, reads, p);
      reads.add(p);
      return v;
    },
  });
}

/** Every leaf path of a config. */
function leaves(o: Obj, path = ""): string[] {
  return Object.entries(o).flatMap(([k, v]) => {
    const p = path ? `${path}.${k}` : k;
    return isObj(v) ? leaves(v, p) : [p];
  });
}

/** A copy of `cfg` with the leaf at `path` changed to some other value. */
function perturbed(cfg: Obj, path: string): Obj {
  const copy = structuredClone(cfg);
  const keys = path.split(".");
  const parent = keys.slice(0, -1).reduce((o, k) => o[k] as Obj, copy);
  const last = keys.at(-1)!;
  const v = parent[last];
  parent[last] = typeof v === "number"
    ? v + 1
    : typeof v === "string"
    ? v + "-other"
    : typeof v === "boolean"
    ? !v
    : Array.isArray(v)
    ? [...v, v[0] ?? 1]
    : 1;
  return copy;
}

/** The paths whose change changes the stage's pick (its key). */
function keyed(stage: Stage<Config>, cfg: Config): Set<string> {
  const base = canonicalJson(stage.pick(cfg));
  return new Set(
    leaves(cfg as unknown as Obj).filter((p) => {
      try {
        return canonicalJson(stage.pick(perturbed(cfg as unknown as Obj, p) as Config)) !== base;
      } catch {
        return true;
      }
    }),
  );
}

async function audit(extra: Record<string, unknown>, side = 6) {
  const dir = await Deno.makeTempDir();
  const files = await writeIdxFiles(dir, { side });
  const cfg = await configOf(dir, tinyConfig(files, extra));
  const reads = new Map<string, Set<string>>(STAGES.map((s) => [s.name, new Set()]));
  const stages: Stage<Config>[] = STAGES.map((s) => ({
    ...s,
    outputs: s.outputs && ((c) => s.outputs!(tracked(c, reads.get(s.name)!))),
    run: (ctx) => s.run({ ...ctx, cfg: tracked(ctx.cfg, reads.get(s.name)!) }),
  }));
  const { runtime } = await selectBackend("cpu");
  await runPipeline({
    cfg,
    stages,
    results: join(dir, "results"),
    runtime,
    progress: new Progress({ quiet: true }),
  });
  const problems: string[] = [];
  for (const s of STAGES) {
    const k = keyed(s, cfg);
    const r = reads.get(s.name)!;
    const all = new Set(leaves(cfg as unknown as Obj));
    const under = [...r].filter((p) => all.has(p) && !k.has(p));
    const over = [...k].filter((p) => !r.has(p));
    if (under.length) problems.push(`${s.name} reads but does not key: ${under.join(", ")}`);
    if (over.length) problems.push(`${s.name} keys but never reads: ${over.join(", ")}`);
  }
  await Deno.remove(dir, { recursive: true });
  return problems;
}

Deno.test("every stage's key holds exactly the config fields it reads (lecture settings)", async () => {
  assert.deepEqual(await audit({}), []);
});

Deno.test("every stage's key holds exactly the config fields it reads (recipe knobs on)", async () => {
  const problems = await audit({
    preprocess: { subsetMode: "random", trainSubset: 100, testSubset: 30 },
    loss: { counterfeiter: "hinge" },
    adversarial: {
      iterations: 4,
      batchSize: 16,
      fitBatchSize: 8,
      checkpointEvery: 2,
      instanceNoise: 0.1,
      labelNoise: 0.05,
      ema: 0.9,
      learningRateHalfLife: 3,
    },
  });
  assert.deepEqual(problems, []);
});

Deno.test("every stage's key holds exactly the config fields it reads (the conv evaluator)", async () => {
  const conv = { filters: [2, 3], kernel: 5, dense: 4, epochs: 1, batchSize: 32 };
  assert.deepEqual(await audit({ evaluator: { kind: "conv", conv } }, 28), []);
});
