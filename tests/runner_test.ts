/** The engine on a toy application of its own: keys, caching, explain, outputs, records. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadConfig } from "../pipeline/config.ts";
import { planRun, runPipeline } from "../pipeline/runner.ts";
import { ENGINE_FIELDS, type Infer, int, obj, str } from "../pipeline/schema.ts";
import type { Runtime, Stage } from "../pipeline/stage.ts";
import { Progress } from "../pipeline/progress.ts";

// a two-stage application that knows nothing of GANs: count to n, then double
const schema = obj("toy", {
  ...ENGINE_FIELDS,
  count: obj("counting", {
    n: int(3, "how far", 1),
    note: str("", "a note the count keys on but never writes"),
  }),
  scale: obj("scaling", { by: int(2, "factor", 1) }),
});
type Toy = Infer<typeof schema>;

let runs: string[] = [];
const countStage: Stage<Toy> = {
  name: "count",
  code: import.meta.url,
  needs: [],
  pick: (cfg) => cfg.count,
  outputs: () => ["numbers.json"],
  async run({ cfg, outDir }) {
    runs.push("count");
    const xs = Array.from({ length: cfg.count.n }, (_, i) => i + 1);
    await Deno.writeTextFile(join(outDir, "numbers.json"), JSON.stringify(xs));
    return { total: xs.length };
  },
};
const scaleStage: Stage<Toy> = {
  name: "scale",
  code: import.meta.url,
  needs: ["count"],
  pick: (cfg) => cfg.scale,
  usesRuntime: true,
  outputs: () => ["scaled.json"],
  async run({ cfg, inputs, outDir }) {
    runs.push("scale");
    const xs: number[] = JSON.parse(await Deno.readTextFile(join(inputs.count, "numbers.json")));
    await Deno.writeTextFile(
      join(outDir, "scaled.json"),
      JSON.stringify(xs.map((x) => x * cfg.scale.by)),
    );
  },
};
const runtime: Runtime = { facts: { backend: "toy/r1", tfjs: "0", denormals: "flush" } };

async function setup(overrides: string[] = []) {
  const dir = await Deno.makeTempDir();
  const file = join(dir, "toy.json");
  await Deno.writeTextFile(file, JSON.stringify({ count: { n: 4 } }));
  const cfg = await loadConfig<Toy>({ schema }, file, overrides);
  return { dir, cfg, results: join(dir, "results") };
}

const quiet = new Progress({ quiet: true });

Deno.test("the engine runs an application it knows nothing about, and caches it", async () => {
  const { cfg, results } = await setup();
  runs = [];
  const stages = [countStage, scaleStage];
  const rec = await runPipeline({ cfg, stages, results, runtime, progress: quiet });
  assert.deepEqual(runs, ["count", "scale"]);
  assert.equal(rec.status, "ok");
  assert.deepEqual(rec.stages.map((s) => s.status), ["ran", "ran"]);
  assert.deepEqual(rec.stages[0].summary, { total: 4 });
  const again = await runPipeline({ cfg, stages, results, runtime, progress: quiet });
  assert.deepEqual(runs, ["count", "scale"], "nothing ran twice");
  assert.deepEqual(again.stages.map((s) => s.status), ["cached", "cached"]);
  const scaled = join(results, "cache", "scale", again.stages[1].key, "scaled.json");
  assert.deepEqual(JSON.parse(await Deno.readTextFile(scaled)), [2, 4, 6, 8]);
});

Deno.test("explain names the changed field, the upstream change and the runtime change", async () => {
  const { cfg, results } = await setup();
  await runPipeline({ cfg, stages: [countStage, scaleStage], results, runtime, progress: quiet });
  const other = { ...cfg, scale: { by: 3 } };
  const p1 = await planRun({ cfg: other, stages: [countStage, scaleStage], results, runtime });
  assert.equal(p1[0].reason, "cached");
  assert.equal(p1[1].reason, "by changed (2 -> 3)"); // paths are within what the stage picks
  const p2 = await planRun({
    cfg: { ...cfg, count: { ...cfg.count, n: 5 } },
    stages: [countStage, scaleStage],
    results,
    runtime,
  });
  assert.match(p2[0].reason, /n changed \(4 -> 5\)/);
  // scale's key holds count's outputs, which exist only once count has run
  assert.equal(p2[1].key, null);
  assert.equal(p2[1].reason, "waits for count: cached if its outputs come out the same");
  // only stages that use tensors carry the runtime facts
  const p3 = await planRun({
    cfg,
    stages: [countStage, scaleStage],
    results,
    runtime: { facts: { ...runtime.facts, denormals: "ieee" } },
  });
  assert.equal(p3[0].reason, "cached");
  assert.equal(p3[1].reason, 'denormals changed ("flush" -> "ieee")');
});

Deno.test("an entry missing a declared output is never committed; --until and --force work", async () => {
  const { cfg, results } = await setup();
  const broken: Stage<Toy> = { ...scaleStage, run: () => Promise.resolve() };
  await assert.rejects(
    () => runPipeline({ cfg, stages: [countStage, broken], results, runtime, progress: quiet }),
    /did not write its declared output scaled\.json; nothing was committed/,
  );
  const plans = await planRun({ cfg, stages: [countStage, scaleStage], results, runtime });
  assert.deepEqual(plans.map((p) => p.cached), [true, false]);
  runs = [];
  const rec = await runPipeline({
    cfg,
    stages: [countStage, scaleStage],
    results,
    runtime,
    until: "count",
    force: ["count"],
    progress: quiet,
  });
  assert.deepEqual(runs, ["count"]);
  assert.deepEqual(rec.stages.map((s) => [s.stage, s.status]), [["count", "ran"]]);
});

Deno.test("early cutoff: a stage rerun that writes the same bits leaves its downstream cached", async () => {
  const { cfg, results } = await setup();
  const stages = [countStage, scaleStage];
  await runPipeline({ cfg, stages, results, runtime, progress: quiet });
  runs = [];
  const again = await runPipeline({
    cfg,
    stages,
    results,
    runtime,
    force: ["count"],
    progress: quiet,
  });
  assert.deepEqual(runs, ["count"], "scale is not rerun: count's outputs came out the same");
  assert.equal(again.stages[1].status, "cached");
  assert.equal(again.stages[1].reason, "upstream count reran with the same outputs: cached");
  // a new key upstream (a field that changes no output): count reruns, scale does not
  runs = [];
  const noted = await runPipeline({
    cfg: { ...cfg, count: { ...cfg.count, note: "x" } },
    stages,
    results,
    runtime,
    progress: quiet,
  });
  assert.deepEqual(runs, ["count"]);
  assert.notEqual(noted.stages[0].key, again.stages[0].key);
  assert.equal(noted.stages[1].status, "cached");
  assert.equal(noted.stages[1].key, again.stages[1].key);
  // new outputs upstream: the downstream key changes, and the record says why it ran
  runs = [];
  const more = await runPipeline({
    cfg: { ...cfg, count: { ...cfg.count, n: 5 } },
    stages,
    results,
    runtime,
    progress: quiet,
  });
  assert.deepEqual(runs, ["count", "scale"]);
  assert.equal(more.stages[1].reason, "upstream count produced new outputs");
  assert.equal(more.stages[1].inputs?.upstream.count.length, 64, "run.json keeps the key's recipe");
});
