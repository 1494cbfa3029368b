/** Successive halving sweeps: ASHA promotions, extended runs, stop reasons, validation. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { compareHalving, nextJob, startOrder } from "../pipeline/sweep/halving.ts";
import { validateSweep } from "../pipeline/sweep/spec.ts";
import { APP } from "../stages/app.ts";
import { ROOT, tinyConfig, writeConfig, writeIdxFiles } from "./helpers.ts";

const st = (figures: (number | null)[], busy = false) => ({ figures, busy });

Deno.test("ASHA: promote the best of the top 1/eta at the highest rung, else start a new point", () => {
  // nothing finished: start point 0
  assert.deepEqual(nextJob([st([]), st([])], { rungs: 3, eta: 3, higherIsBetter: false }), {
    point: 0,
    rung: 0,
  });
  // two finished rung 0: floor(2/3) = 0 promotions, so a fresh point
  assert.deepEqual(
    nextJob([st([4]), st([2]), st([])], { rungs: 3, eta: 3, higherIsBetter: false }),
    { point: 2, rung: 0 },
  );
  // three finished, the best (2) is promoted; higher-is-better promotes the 9
  const three = [st([4]), st([2]), st([9])];
  assert.deepEqual(nextJob(three, { rungs: 3, eta: 3, higherIsBetter: false }), {
    point: 1,
    rung: 1,
  });
  assert.deepEqual(nextJob(three, { rungs: 3, eta: 3, higherIsBetter: true }), {
    point: 2,
    rung: 1,
  });
  // a busy or already promoted point is not promoted again; promotions at higher rungs first
  assert.equal(
    nextJob([st([4]), st([2], true), st([9])], { rungs: 3, eta: 3, higherIsBetter: false }),
    null,
  );
  const six = [st([1, 5]), st([2, 3]), st([3, 4]), st([4]), st([5]), st([6])];
  assert.deepEqual(nextJob(six, { rungs: 3, eta: 3, higherIsBetter: false }), {
    point: 1,
    rung: 2,
  });
});

Deno.test("new points start in a seeded shuffle of the grid, the same on every resume; 'given' keeps the file's order", () => {
  const points = Array.from({ length: 27 }, (_, i) => ({ lr: i % 3, batch: Math.floor(i / 3) }));
  const order = startOrder(points);
  assert.deepEqual([...order].sort((a, b) => a - b), points.map((_, i) => i));
  assert.notDeepEqual(order, points.map((_, i) => i));
  assert.deepEqual(startOrder(points), order, "the same points, the same order");
  assert.notDeepEqual(startOrder(points.map((p) => ({ ...p, seed: 2 }))), order);
  assert.deepEqual(startOrder(points, "given"), points.map((_, i) => i));
  // nextJob starts the first point in the order that has not started
  const states = [st([]), st([]), st([], true), st([])];
  assert.deepEqual(
    nextJob(states, { rungs: 3, eta: 3, higherIsBetter: false, order: [2, 3, 0, 1] }),
    { point: 3, rung: 0 },
  );
});

Deno.test("halving specs are validated like the rest of a sweep file", () => {
  const bad = (search: unknown, re: RegExp) =>
    assert.throws(() => validateSweep({ base: "x.json", search }, "s.json", APP), re);
  bad({ method: "hyperband", metric: "frechet", eta: 3, rungs: [1, 2] }, /search\.method/);
  bad(
    { method: "halving", metric: "fid", eta: 3, rungs: [1, 2] },
    /search\.metric: string "fid" is not allowed/,
  );
  bad({ method: "halving", metric: "frechet", eta: 1, rungs: [1, 2] }, /search\.eta/);
  bad({ method: "halving", metric: "frechet", eta: 3, rungs: [3, 2] }, /search\.rungs/);
  bad(
    { method: "halving", metric: "frechet", eta: 3, rungs: [1, 2], order: "random" },
    /search\.order: string "random" is not allowed; allowed: shuffled, given/,
  );
  bad(
    { method: "halving", metric: "frechet", eta: 3, rungs: [1, 2], resource: "x.y" },
    /search\.resource: "x\.y" is not a config field/,
  );
  validateSweep(
    { base: "x.json", search: { method: "halving", metric: "frechet", eta: 3, rungs: [10, 30] } },
    "s.json",
    APP,
  );
});

async function sweepCli(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "stages/app.ts"), "sweep", ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

/** A folder with `tiny.json`: small data and nets, short runs, for halving sweeps over it. */
async function tinyBase(): Promise<string> {
  const dir = await Deno.makeTempDir();
  const files = await writeIdxFiles(dir, { side: 28, train: 150, test: 40 });
  await writeConfig(
    dir,
    "tiny",
    tinyConfig(files, {
      evaluator: { kind: "mlp", hidden: [8], epochs: 1, batchSize: 32 },
      evaluate: { samples: 20 },
      adversarial: { iterations: 5, batchSize: 16, fitBatchSize: 8, checkpointEvery: 10 },
    }),
  );
  return dir;
}

Deno.test("a 9-point halving sweep runs every point to rung 0, extends only the best, and says why each stopped", async () => {
  const dir = await tinyBase();
  const sweep = await writeConfig(dir, "h", {
    base: "tiny.json",
    // nine settings of one seed each (a setting's seeds are decided together: see below)
    grid: {
      "optimizer.learningRate": [1e-4, 2e-4, 3e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2],
    },
    search: { method: "halving", metric: "tailFrechet", eta: 3, rungs: [10, 30, 90] },
  });
  const results = join(dir, "results");
  const r = await sweepCli([sweep, "--results", results, "--jobs", "2"]);
  assert.equal(r.code, 0, r.stderr);
  const m = r.stderr.match(/halving spent (\d+) of the full grid's (\d+) adversarial\.iterations/);
  assert.ok(m, r.stderr);
  assert.equal(Number(m[2]), 9 * 90);
  assert.ok(Number(m[1]) < 0.5 * Number(m[2]), m[0]);
  const rec = JSON.parse(
    await Deno.readTextFile(join(r.stdout.trim().split("\n").at(-1)!, "..", "sweep.json")),
  );
  const reached = rec.points.map((p: { rungFigures: (number | null)[] }) =>
    p.rungFigures.filter((f) => f !== null).length
  );
  assert.ok(reached.every((n: number) => n >= 1), `every point ran rung 0: ${reached}`);
  assert.ok(reached.filter((n: number) => n === 3).length >= 1, `one finished: ${reached}`);
  assert.ok(
    reached.filter((n: number) => n >= 2).length >= 3,
    `the best third went on: ${reached}`,
  );
  // the rung runs continued each other: extended, not restarted
  assert.match(r.stderr, /rung 1 \(adversarial\.iterations=30\)/);
  const logs = [...Deno.readDirSync(join(r.stdout.trim().split("\n").at(-1)!, "..", "logs"))];
  const extended = logs.filter((e) =>
    /continuing the cached 10-iteration run/.test(
      Deno.readTextFileSync(join(r.stdout.trim().split("\n").at(-1)!, "..", "logs", e.name)),
    )
  );
  assert.ok(extended.length >= 3, `extended: ${extended.length}`);
  const html = await Deno.readTextFile(r.stdout.trim().split("\n").at(-1)!);
  assert.match(html, /stopped at rung 0 \(10\): tailFrechet [\d.]+ not in the best 1\/3/);
  assert.match(html, /finished every rung \(90\)/);
  // run again (as after an interrupt): the figures it had stand, so nothing runs again
  const logDir = join(r.stdout.trim().split("\n").at(-1)!, "..", "logs");
  const before = [...Deno.readDirSync(logDir)].length;
  const again = await sweepCli([sweep, "--results", results, "--jobs", "2"]);
  assert.equal(again.code, 0, again.stderr);
  const rec2 = JSON.parse(
    await Deno.readTextFile(join(again.stdout.trim().split("\n").at(-1)!, "..", "sweep.json")),
  );
  assert.deepEqual(
    rec2.points.map((p: { rungFigures: unknown }) => p.rungFigures),
    rec.points.map((p: { rungFigures: unknown }) => p.rungFigures),
  );
  // and each point's status is what happened, in sweep.json as in the first run's record
  const statuses = (x: { points: { status: string }[] }) => x.points.map((p) => p.status);
  assert.deepEqual(statuses(rec), Array(9).fill("done"));
  assert.deepEqual(statuses(rec2), statuses(rec));
  assert.equal([...Deno.readDirSync(logDir)].length, before, "the second pass ran nothing");
  assert.match(again.stderr, new RegExp(`halving spent ${m[1]} of`));
  // --full-grid: every point to the last rung, extending the search's runs, then compared
  const full = await sweepCli([sweep, "--results", results, "--full-grid"]);
  assert.equal(full.code, 0, full.stderr);
  assert.match(full.stderr, /\[9\/9\] h-full-p008 done/);
  const cmp = full.stderr.match(
    /halving \(.*\) found (p\d+) \(tailFrechet ([\d.]+)\) with (\d+) of 810 adversarial\.iterations \(\d+%\); the full grid's best is (p\d+) \(tailFrechet ([\d.]+)\): (the same|a different) point/,
  );
  assert.ok(cmp, full.stderr);
  assert.equal(cmp[3], m[1]);
  const fullRec = JSON.parse(
    await Deno.readTextFile(join(full.stdout.trim().split("\n").at(-1)!, "..", "sweep.json")),
  );
  // the points that finished every rung have the same figure in the grid: the same bits
  rec.points.forEach((p: { index: number; rungFigures: (number | null)[] }) => {
    if ((p.rungFigures[2] ?? null) === null) return;
    const g = fullRec.points[p.index].summaries.evaluate.tailFrechet;
    assert.equal(g, p.rungFigures[2], `point ${p.index}`);
  });
  assert.equal(cmp[6] === "the same", cmp[1] === cmp[4]);
  if (cmp[6] !== "the same") {
    assert.match(
      full.stderr,
      /a different point, ranked \d+ of 9 in the grid, [\d.]+ \([\d.]+%\) behind its best/,
    );
  }
  // a changed search block starts the search over: its old figures were another metric's
  await writeConfig(dir, "h", {
    base: "tiny.json",
    grid: {
      "optimizer.learningRate": [1e-4, 2e-4, 3e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2],
    },
    search: { method: "halving", metric: "frechet", eta: 3, rungs: [10, 30, 90] },
  });
  const stale = await sweepCli([sweep, "--results", results, "--full-grid"]);
  assert.match(
    stale.stderr,
    /was made with another search block: run it again without --full-grid/,
  );
  const changed = await sweepCli([sweep, "--results", results, "--jobs", "2"]);
  assert.equal(changed.code, 0, changed.stderr);
  assert.match(changed.stderr, /the search block changed since .*sweep\.json was written/);
  assert.ok([...Deno.readDirSync(logDir)].length > before, "the new search ran its points");
  assert.match(
    await Deno.readTextFile(changed.stdout.trim().split("\n").at(-1)!),
    /stopped at rung 0 \(10\): frechet [\d.]+ not in the best 1\/3/,
  );
  const noSearch = await writeConfig(dir, "g", { base: "tiny.json", seeds: [1] });
  const refused = await sweepCli([noSearch, "--results", results, "--full-grid"]);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /--full-grid: the sweep has no "search" block to leave out/);
});

Deno.test("compareHalving: the search's best among points that finished, what it spent, the grid's best", () => {
  const c = compareHalving([[5, 3, 2], [4], [6, 1], [9]], [2, 1.5, 3, 8], [10, 30, 90], false);
  assert.deepEqual(c.halving, { point: 0, figure: 2 });
  assert.deepEqual(c.grid, { point: 1, figure: 1.5 });
  assert.equal(c.spent, 90 + 10 + 30 + 10);
  assert.equal(c.full, 360);
  // the search's p000 scores 2 in the grid: behind p001 (1.5), ahead of p002 and p003
  assert.equal(c.rankInGrid, 2);
  assert.deepEqual(compareHalving([[5, 3, 2]], [2], [1, 2, 3], true).halving, {
    point: 0,
    figure: 2,
  });
});

Deno.test("halving decides per setting on the mean over its seeds: a setting's seeds go on together", async () => {
  const dir = await tinyBase();
  const sweep = await writeConfig(dir, "h", {
    base: "tiny.json",
    grid: { "optimizer.learningRate": [0.0003, 0.001, 0.003] },
    seeds: [1, 2],
    search: { method: "halving", metric: "tailFrechet", eta: 3, rungs: [10, 30] },
  });
  const r = await sweepCli([sweep, "--results", join(dir, "results"), "--jobs", "2"]);
  assert.equal(r.code, 0, r.stderr);
  const rec = JSON.parse(
    await Deno.readTextFile(join(r.stdout.trim().split("\n").at(-1)!, "..", "sweep.json")),
  );
  type P = { overrides: Record<string, number>; rungFigures: (number | null)[]; stopped: string };
  const points: P[] = rec.points;
  const lr = (p: P) => p.overrides["optimizer.learningRate"];
  const went = points.filter((p) => p.rungFigures.filter((f) => f !== null).length === 2);
  // one setting of three (1/eta) went on, both its seeds
  assert.equal(went.length, 2, points.map((p) => p.rungFigures).join(" | "));
  assert.equal(lr(went[0]), lr(went[1]));
  // it had the best mean over its seeds at rung 0
  const mean = (v: number) => {
    const mine = points.filter((p) => lr(p) === v).map((p) => p.rungFigures[0]!);
    return mine.reduce((a, b) => a + b, 0) / mine.length;
  };
  const means = [0.0003, 0.001, 0.003].map(mean);
  assert.equal(mean(lr(went[0])), Math.min(...means));
  const stopped = points.find((p) => lr(p) !== lr(went[0]))!;
  assert.match(
    stopped.stopped,
    /stopped at rung 0 \(10\): tailFrechet [\d.]+ \(mean of its 2 seeds\) not in the best 1\/3 of the 3 settings/,
  );
});
