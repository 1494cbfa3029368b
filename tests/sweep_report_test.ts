/** The sweep report's figures, ranking and page. */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { PointRecord } from "../pipeline/point_record.ts";
import { goalMarks, meanGoalMarks } from "../stages/evaluation/goal.ts";
import { seedRows, seedTable } from "../stages/tools/seed_table.ts";
import {
  figuresOf,
  goalBySetting,
  goalSummary,
  rankPoints,
  settingsSpec,
  writeSweepReport,
} from "../stages/reporting/sweep_report.ts";

const point = (index: number, evaluate: Record<string, number> | null, seed = 0): PointRecord => ({
  index,
  overrides: { "optimizer.learningRate": 10 ** -(index + 2), seed },
  status: evaluate ? "done" : "failed",
  runDir: evaluate ? `/r/runs/p${index}-abc` : null,
  error: evaluate ? null : "police loss became NaN",
  seconds: 1,
  summaries: evaluate ? { evaluate } : {},
  keys: {},
});

Deno.test("figures add the gap |D(real) - D(fake)|; ranking puts failed points last", () => {
  const a = point(0, { frechet: 30, dReal: 0.9, dFake: 0.2, classifierScore: 4 });
  const b = point(1, { frechet: 10, dReal: 0.6, dFake: 0.5, classifierScore: 7 });
  const c = point(2, null);
  assert.ok(Math.abs(figuresOf(a).gap! - 0.7) < 1e-12);
  assert.equal(figuresOf(c).gap, undefined);
  assert.deepEqual(rankPoints([a, c, b], "frechet", "asc").map((p) => p.index), [1, 0, 2]);
  assert.deepEqual(rankPoints([c, a, b], "classifierScore", "desc").map((p) => p.index), [1, 0, 2]);
  assert.deepEqual(rankPoints([a, b, c], "gap", "asc").map((p) => p.index), [1, 0, 2]);
});

Deno.test("the report ranks the points, links each run and shows each failure's reason", async () => {
  const dir = await Deno.makeTempDir();
  const cache = await Deno.makeTempDir();
  const points = [
    point(0, { frechet: 30, dReal: 0.9, dFake: 0.2 }),
    point(1, { frechet: 10, dReal: 0.6, dFake: 0.5 }),
    point(2, null),
  ];
  const path = await writeSweepReport({
    dir,
    name: "demo",
    points,
    rank: { metric: "frechet", order: "asc" },
    cacheRoot: cache,
  });
  assert.equal(path, join(dir, "report.html"));
  const html = await Deno.readTextFile(path);
  assert.match(html, /<h1>Sweep demo<\/h1>/);
  assert.match(html, /3 points, 2 done, 1 failed/);
  assert.ok(html.indexOf("p1-abc") < html.indexOf("p0-abc"), "ranked by frechet, lower first");
  assert.match(html, /<th>stopped or failed: why<\/th>[\s\S]*police loss became NaN/);
  assert.doesNotMatch(html, /<th>tailFrechet<\/th>/);
  // ranked by a figure the table has no column for: it gets one
  const byTail = await Deno.readTextFile(
    await writeSweepReport({
      dir,
      name: "demo",
      points: [
        point(0, { frechet: 30, tailFrechet: 41.25 }),
        point(1, { frechet: 10, tailFrechet: 52.5 }),
      ],
      rank: { metric: "tailFrechet", order: "asc" },
      cacheRoot: cache,
    }),
  );
  assert.match(byTail, /<th>status<\/th><th>tailFrechet<\/th><th>Frechet<\/th>/);
  assert.ok(byTail.indexOf("p0-abc") < byTail.indexOf("p1-abc"), "ranked by tailFrechet");
  assert.match(byTail, /<td>done<\/td><td>41\.250<\/td><td>30<\/td>/);
});

Deno.test("a halving report says at which length each point was measured and never averages across lengths", async () => {
  const stoppedEarly = {
    ...point(0, { frechet: 30, classesCovered: 1, dReal: 0.9, dFake: 0.2 }),
    rungFigures: [30, null],
    stopped: "stopped at rung 0 (20): frechet 30 not in the best 1/3",
  };
  const wentOn = {
    ...point(0, { frechet: 12, classesCovered: 1, dReal: 0.6, dFake: 0.5 }, 1),
    index: 1,
    rungFigures: [25, 12],
  };
  const specs = settingsSpec([stoppedEarly, wentOn], [20, 60]) as {
    data: { values: { setting: string }[] };
    spec: {
      layer: {
        encoding: { y: { axis?: { labelLimit: number } }; x: { axis?: { format: string } } };
      }[];
    };
  };
  const settings = new Set(specs.data.values.map((v) => v.setting));
  assert.deepEqual([...settings].sort(), ["learningRate=0.01 @20", "learningRate=0.01 @60"]);
  assert.equal(specs.spec.layer[0].encoding.y.axis?.labelLimit, 0, "whole labels");
  assert.equal(specs.spec.layer[0].encoding.x.axis?.format, "~g", "no 1.000000 on a flat axis");
  const dir = await Deno.makeTempDir();
  const html = await Deno.readTextFile(
    await writeSweepReport({
      dir,
      name: "h",
      points: [stoppedEarly, wentOn],
      rank: { metric: "frechet", order: "asc" },
      cacheRoot: await Deno.makeTempDir(),
      search: { resource: "adversarial.iterations", rungs: [20, 60] },
    }),
  );
  assert.match(html, /measured at \(iterations\)/);
  assert.match(html, /<td>20<\/td>/);
  assert.match(html, /<td>60<\/td>/);
});

Deno.test("the report gives each setting's goal marks over its seeds: mean, range, met on k of n", async () => {
  const cache = await Deno.makeTempDir();
  const row = (iteration: number | "final", dReal: number, frechet: number) => ({
    iteration,
    dReal,
    dFake: 0.5,
    frechet,
    classifierScore: 9,
    classesCovered: 10,
    klToUniform: 0,
    outOfRangeFraction: 0,
    classHistogram: new Array(10).fill(0.1),
  });
  const seeds = [[0.55, 20], [0.75, 40]] as const;
  const points: PointRecord[] = [];
  for (const [i, [dReal, fd]] of seeds.entries()) {
    const key = `k${i}`;
    await Deno.mkdir(join(cache, "evaluate", key), { recursive: true });
    const final = row("final", dReal, fd);
    await Deno.writeTextFile(
      join(cache, "evaluate", key, "metrics.json"),
      JSON.stringify({
        reference: { frechet: 10 },
        checkpoints: [row(100, dReal, fd), final],
        final,
      }),
    );
    points.push({ ...point(0, { frechet: fd }, i + 1), index: i, keys: { evaluate: key } });
  }
  const [s] = await goalBySetting(points, cache);
  assert.equal(s.setting, "learningRate=0.01");
  assert.equal(s.seeds, 2);
  const dReal = s.marks[0];
  assert.deepEqual(dReal.values, [0.55, 0.75]);
  assert.equal(dReal.met, 1, "within 0.1 of 0.5 on one seed of two");
  const fd = s.marks.at(-1)!;
  assert.deepEqual(fd.values, [20, 40]);
  assert.equal(
    fd.met,
    1,
    "within 3x the floor of 10 (no factor recorded: the MLP's): 20 is, 40 is not",
  );
  // as a mean over the seeds: D(real) 0.65 misses, Frechet 30 = 3 x 10 meets
  assert.equal(dReal.meanMet, false);
  assert.equal(fd.meanMet, true);
  assert.equal(s.meanMet, 4);
  const [line] = await goalSummary({
    dir: cache,
    name: "s",
    points,
    rank: { metric: "frechet", order: "asc" },
    cacheRoot: cache,
  });
  assert.equal(
    line,
    "goal over 2 seeds, learningRate=0.01: the mean meets 4 of 5 marks (misses D(real)); each seed met 5, 3",
  );
  // gc removes one seed's entry: the table, read again in the same process, drops that seed
  await Deno.remove(join(cache, "evaluate", points[1].keys.evaluate!), { recursive: true });
  const [after] = await goalBySetting(points, cache);
  assert.equal(after.seeds, 1);
  assert.deepEqual(after.marks[0].values, [0.55]);
});

Deno.test("the class-shares mark of a mean uses the seeds' mean shares", () => {
  const run = (hist: number[]) => ({
    reference: { frechet: 10 },
    checkpoints: [{
      iteration: "final" as const,
      dReal: 0.5,
      dFake: 0.5,
      frechet: 10,
      classifierScore: 9,
      classesCovered: 10,
      klToUniform: 0,
      outOfRangeFraction: 0,
      classHistogram: hist,
    }],
  });
  // digit 0 at 18% on one seed and 4% on the other: neither seed meets it, their mean (11%) does
  const a = run([18, 10, 10, 10, 10, 10, 8, 8, 8, 8]),
    b = run([4, 10, 10, 10, 10, 10, 10, 12, 12, 12]);
  assert.equal(goalMarks(a).marks[3].met, false);
  assert.equal(goalMarks(b).marks[3].met, false);
  const mean = meanGoalMarks([a, b]);
  assert.equal(mean.marks[3].met, true);
  assert.equal(mean.met, 5);
  assert.ok(Math.abs(mean.marks[2].value - 9) < 1e-12);
  // the Frechet mark of a mean is judged on the seeds' mean floor (10 and 12: 11, limit 33), not
  // the first seed's (10, limit 30): the floor's real digits are drawn from each seed
  const fd = (floor: number, frechet: number) => {
    const r = run(new Array(10).fill(10));
    return { reference: { frechet: floor }, checkpoints: [{ ...r.checkpoints[0], frechet }] };
  };
  const byFloor = meanGoalMarks([fd(10, 32), fd(12, 33)]).marks[4];
  assert.ok(Math.abs(byFloor.value - 32.5) < 1e-12);
  assert.equal(byFloor.met, true);
  assert.match(byFloor.target, /= 33\.00/);
});

Deno.test("seed_table: a row per seed, then the mean, with what each meets", async () => {
  const results = await Deno.makeTempDir();
  const sweepDir = join(results, "sweeps", "s-1");
  await Deno.mkdir(sweepDir, { recursive: true });
  const points: PointRecord[] = [];
  for (const [i, dReal] of [0.55, 0.75].entries()) {
    const key = `k${i}`;
    await Deno.mkdir(join(results, "cache", "evaluate", key), { recursive: true });
    const final = {
      iteration: "final",
      dReal,
      dFake: 0.5,
      frechet: 20,
      classifierScore: 9,
      classesCovered: 10,
      klToUniform: 0,
      outOfRangeFraction: 0,
      classHistogram: new Array(10).fill(0.1),
    };
    await Deno.writeTextFile(
      join(results, "cache", "evaluate", key, "metrics.json"),
      JSON.stringify({ reference: { frechet: 10 }, checkpoints: [final], final }),
    );
    points.push({ ...point(0, { frechet: 20 }, i + 1), index: i, keys: { evaluate: key } });
  }
  await Deno.writeTextFile(join(sweepDir, "sweep.json"), JSON.stringify({ points }));
  const rows = await seedRows("Cooperlake", sweepDir);
  assert.deepEqual(rows.map((r) => [r.seed, r.met]), [["1", 5], ["2", 4], ["mean of 2", 4]]);
  const table = seedTable(rows);
  assert.match(
    table,
    /\| Cooperlake \| \*\*mean of 2\*\* \| 0\.650 \| 0\.500 ✓ \| 9\.00 ✓ \| 10\.0% ✓ \| 2\.00x ✓ \| 4 \|/,
  );
  await assert.rejects(seedRows("x", sweepDir, "nothing-like-this"), /no finished point matches/);
});
