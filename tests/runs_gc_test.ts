/** The runs table, run diffs, and gc that never removes what a kept run or a live process uses. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cli, ROOT, tinyConfig, writeConfig, writeIdxFiles } from "./helpers.ts";
import { RUN_PERMISSIONS, SWEEP_PERMISSIONS } from "../pipeline/sweep/point.ts";

async function twoRuns() {
  const dir = await Deno.makeTempDir();
  const files = await writeIdxFiles(dir);
  const cfg = await writeConfig(dir, "tiny", tinyConfig(files));
  const results = join(dir, "results");
  const a = await cli(["run", cfg, "--results", results]);
  assert.equal(a.code, 0, a.stderr);
  const b = await cli(["run", cfg, "--results", results, "--set", "optimizer.learningRate=0.003"]);
  assert.equal(b.code, 0, b.stderr);
  const dirOf = (out: string) => join(out.trim().split("\n").at(-1)!, "..");
  return { cfg, results, runA: dirOf(a.stdout), runB: dirOf(b.stdout) };
}

Deno.test("runs lists the differing parameter and the figures; diff names both differences", async () => {
  const { results, runA, runB } = await twoRuns();
  const t = await cli(["runs", "--results", results, "--sort", "frechet"], {
    env: { COLUMNS: "400" },
  });
  assert.equal(t.code, 0, t.stderr);
  const [head, , ...rows] = t.stdout.trim().split("\n");
  assert.match(head, /^run\s+config\s+learningRate\s+frechet\s+classifierScore/);
  assert.equal(rows.length, 2);
  assert.match(t.stdout, /0\.003/);
  const j = await cli(["runs", "--results", results, "--json"]);
  const rowsJ = JSON.parse(j.stdout);
  assert.deepEqual(Object.keys(rowsJ[0].params), ["optimizer.learningRate"]);
  const d = await cli(["diff", runA, runB, "--results", results]);
  assert.equal(d.code, 0, d.stderr);
  assert.match(
    d.stdout,
    /optimizer\.learningRate: 0\.001000 -> 0\.003000|optimizer\.learningRate: 0\.001 -> 0\.003/,
  );
  assert.match(d.stdout, /frechet: [\d.]+ -> [\d.]+ \([+-][\d.e-]+\)/);
  const bad = await cli(["diff", runA, "nope", "--results", results]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /nope: no such run/);
});

Deno.test("the deno.json tasks runs, diff, verify, gc and sample start with the permissions they need", async () => {
  const { results, runA, runB } = await twoRuns();
  for (
    const args of [
      ["runs"],
      ["diff", runA, runB],
      ["verify", "--quiet"],
      ["gc", "--dry-run"],
      ["sample", runA, "--n", "4"],
      ["export", runA, "--out", join(results, "..", "exported")],
    ]
  ) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["task", "-q", ...args.slice(0, 1), ...args.slice(1), "--results", results],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, `${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
  }
});

Deno.test("runs: training time with cached stages as computed, rungs under their point, --columns, --csv, width", async () => {
  const { cfg, results, runA } = await twoRuns();
  const json = async () => JSON.parse((await cli(["runs", "--results", results, "--json"])).stdout);
  const before = (await json()).find((r: { run: string }) => runA.endsWith(r.run));
  assert.equal(before.cachedSeconds, 0);
  // the same config again: every stage cached; the time is still what training took
  const again = await cli(["run", cfg, "--results", results]);
  assert.equal(again.code, 0, again.stderr);
  const after = (await json()).find((r: { run: string }) => runA.endsWith(r.run));
  assert(after.commandSeconds < before.trainedSeconds, "the second command ran nothing");
  assert.equal(after.cachedSeconds, after.trainedSeconds);
  assert(Math.abs(after.trainedSeconds - before.trainedSeconds) < 0.5 * before.trainedSeconds);
  // a longer run of A: the shorter is listed under it
  const longer = await cli(["run", cfg, "--results", results, "--set", "adversarial.iterations=6"]);
  assert.equal(longer.code, 0, longer.stderr);
  const table = await cli(["runs", "--results", results, "--columns", "run,iterations,time"]);
  assert.equal(table.code, 0, table.stderr);
  const lines = table.stdout.trim().split("\n");
  assert.match(lines[0], /^run\s+iterations\s+time$/);
  const i6 = lines.findIndex((l) => /^tiny-\w+\s+6\s/.test(l));
  assert(
    i6 > 0 && /^\s+\u21b3 tiny-\w+\s+4\s+[\d.]+s \([\d.]+ cached\)/.test(lines[i6 + 1]),
    table.stdout,
  );
  const csv = await cli([
    "runs",
    "--results",
    results,
    "--csv",
    "--columns",
    "run,learningRate,frechet",
  ]);
  const [csvHead, ...csvRows] = csv.stdout.trim().split("\n");
  assert.equal(csvHead, "run,optimizer.learningRate,frechet,rungOf");
  assert.equal(csvRows.length, 3);
  assert(csvRows.some((r) => /^tiny-\w+,0\.001,[\d.]+,tiny-\w+$/.test(r)), csv.stdout);
  const narrow = await cli(["runs", "--results", results], { env: { COLUMNS: "100" } });
  assert(narrow.stdout.trim().split("\n").every((l) => l.length <= 100), narrow.stdout);
  assert.match(narrow.stdout, /more: .*--columns or --csv shows them\)/);
  const bad = await cli(["runs", "--results", results, "--columns", "run,nosuch"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--columns: no column nosuch; columns: run, config, /);
});

Deno.test("the permissions of points and Slurm tasks are the deno.json run and sweep tasks'", async () => {
  const { tasks } = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  const flags = (task: string) => task.split(" ").filter((w: string) => w.startsWith("--allow"));
  assert.deepEqual(flags(tasks.run), [...RUN_PERMISSIONS]);
  assert.deepEqual(flags(tasks.sweep), [...SWEEP_PERMISSIONS]);
});

Deno.test("gc removes only what no kept run uses, skips entries in use, and the kept run stays cached", async () => {
  const { cfg, results, runB } = await twoRuns();
  await Deno.remove(runB, { recursive: true }); // forget run B
  const dry = await cli(["gc", "--results", results, "--dry-run"]);
  assert.equal(dry.code, 0, dry.stderr);
  // B differs in the learning rate: its warm-ups, loop, evaluation and report go; data and
  // the evaluator classifier are shared with A and stay
  const would = dry.stdout.split("\n").filter((l) =>
    l.startsWith("would remove ") && l.includes("/")
  );
  const stages = would.map((l) => l.split(" ")[2].split("/")[0]).sort();
  assert.deepEqual(stages, [
    "adversarial",
    "evaluate",
    "report",
    "train_counterfeiter",
    "train_police",
  ]);
  // an entry a live process holds is never removed
  const victim = would.find((l) => l.includes(" adversarial/"))!.split(" ")[2].split("/")[1];
  const adv = join(results, "cache", "adversarial");
  const key =
    [...Deno.readDirSync(adv)].find((e) => e.name.startsWith(victim) && !e.name.startsWith("."))!
      .name;
  const lock = await Deno.open(join(adv, `.lock-${key}`), { write: true, create: true });
  await lock.lock(false); // as a run using it does
  const g = await cli(["gc", "--results", results]);
  assert.equal(g.code, 0, g.stderr);
  assert.match(g.stdout, /removed 4 entries/);
  assert.match(g.stdout, /kept adversarial\/\w{12}: in use by another process/);
  assert.ok(Deno.statSync(join(adv, key)).isDirectory);
  lock.close();
  const g2 = await cli(["gc", "--results", results]);
  assert.match(g2.stdout, /removed 1 entries/);
  const ex = await cli(["run", cfg, "--results", results, "--explain"]);
  assert.doesNotMatch(ex.stdout, /runs because/); // run A is still wholly cached
  const v = await cli(["verify", "--results", results, "--quiet"]);
  assert.equal(v.code, 0, v.stdout);
});

Deno.test("gc --keep-runs N keeps the N most recent complete runs, not a newer partial one, and says why", async () => {
  const { cfg, results, runA, runB } = await twoRuns();
  const partial = await cli([
    "run",
    cfg,
    "--results",
    results,
    "--until",
    "train_police",
    "--set",
    "seed=9",
  ]);
  assert.equal(partial.code, 0, partial.stderr);
  const partialDir = partial.stdout.trim().split("\n").at(-1)!;
  const dry = await cli(["gc", "--results", results, "--dry-run", "--keep-runs", "1"]);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(
    dry.stdout,
    new RegExp(`keeping run ${runB}: one of the 1 most recent complete runs`),
  );
  assert.match(dry.stdout, new RegExp(`would remove run ${partialDir}`));
  assert.match(dry.stdout, new RegExp(`would remove run ${runA}`));
});

Deno.test("a run.json of the wrong shape: runs, diff and the ui skip it naming it; gc refuses without --force", async () => {
  const { results, runA, runB } = await twoRuns();
  const { APP } = await import("../stages/app.ts");
  const { runsList } = await import("../stages/ui/data.ts");
  // a third run folder whose record is valid JSON of the wrong shape
  const odd = join(results, "runs", "odd-000000000000");
  await Deno.mkdir(odd);
  for (
    const text of [
      '{"name":"x"}',
      "null",
      "[]",
      '{"configHash":"a","config":{},"status":"ok","seconds":1,"stages":[{"stage":3}]}',
    ]
  ) {
    await Deno.writeTextFile(join(odd, "run.json"), text);
    const t = await cli(["runs", "--results", results, "--json"]);
    assert.equal(t.code, 0, t.stderr);
    assert.equal(JSON.parse(t.stdout).length, 2, text);
    assert.match(
      t.stderr.trim(),
      new RegExp(`^skipped ${odd}/run.json: .+ \\(the other runs are listed\\)$`),
    );
    const d = await cli(["diff", runA, runB, "--results", results]);
    assert.equal(d.code, 0, d.stderr);
    assert.equal((await runsList(APP, results)).runs.length, 2, text);
  }
  // sweep records of the wrong shape: the ui lists the others, and the good points of a record
  const { sweepsList, sweepDetail } = await import("../stages/ui/data.ts");
  const good = {
    index: 1,
    overrides: { seed: 2 },
    status: "done",
    runDir: null,
    error: null,
    seconds: null,
    summaries: {},
    keys: {},
  };
  for (const [name, rec] of [["bad", []], ["mixed", { name: "m", points: [null, good] }]]) {
    await Deno.mkdir(join(results, "sweeps", name as string), { recursive: true });
    await Deno.writeTextFile(
      join(results, "sweeps", name as string, "sweep.json"),
      JSON.stringify(rec),
    );
  }
  assert.deepEqual((await sweepsList(results)).map((s) => [s.name, s.points]), [["mixed", 1]]);
  assert.deepEqual((await sweepDetail(APP, results, "mixed"))?.points.map((p) => p.label), [
    "p001",
  ]);
  // gc: the entries that record names cannot be known, so nothing goes without --force
  const before = await cli(["verify", "--results", results, "--quiet"]);
  const g = await cli(["gc", "--results", results]);
  assert.equal(g.code, 1, g.stdout);
  assert.match(
    g.stderr,
    new RegExp(
      `${odd}/run.json: its stages\\[0\\] is not a stage record; .*nothing was removed: fix or delete the record, or run gc --force`,
    ),
  );
  assert.equal((await cli(["verify", "--results", results, "--quiet"])).stdout, before.stdout);
  const forced = await cli(["gc", "--results", results, "--force"]);
  assert.equal(forced.code, 0, forced.stderr);
  assert.match(
    forced.stdout,
    new RegExp(`collected as if ${odd}/run.json named no entry \\(--force\\)`),
  );
});
