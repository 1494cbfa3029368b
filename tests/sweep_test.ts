/** Sweeps: expansion, validation, shared upstream stages, concurrency, resume, failing points. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError } from "../pipeline/errors.ts";
import { RUN_PERMISSIONS } from "../pipeline/sweep/point.ts";
import { expandSweep, validateSweep } from "../pipeline/sweep/spec.ts";
import { describeRunning } from "../pipeline/sweep/watch.ts";
import { lastProgressRow } from "../pipeline/live.ts";
import { APP } from "../stages/app.ts";
import { ROOT, sweepCli, tinyConfig, writeConfig, writeIdxFiles } from "./helpers.ts";

Deno.test("grid expansion and random sampling are deterministic", () => {
  const spec = {
    base: "x.json",
    grid: { "optimizer.learningRate": [1e-4, 1e-3], "adversarial.batchSize": [100, 200, 300] },
    seeds: [0, 1],
  };
  const a = expandSweep(spec);
  assert.equal(a.length, 12);
  assert.deepEqual(a[0], { "optimizer.learningRate": 1e-4, "adversarial.batchSize": 100, seed: 0 });
  assert.deepEqual(a[11], {
    "optimizer.learningRate": 1e-3,
    "adversarial.batchSize": 300,
    seed: 1,
  });
  assert.deepEqual(expandSweep(spec), a);
  const rnd = {
    base: "x.json",
    random: {
      samples: 50,
      seed: 3,
      ranges: {
        "optimizer.learningRate": { min: 1e-5, max: 1e-2, scale: "log" as const },
        "adversarial.fitBatchSize": { min: 16, max: 64, scale: "int" as const },
      },
    },
  };
  const r1 = expandSweep(rnd), r2 = expandSweep(rnd);
  assert.deepEqual(r1, r2);
  assert.notDeepEqual(r1, expandSweep({ ...rnd, random: { ...rnd.random, seed: 4 } }));
  const lrs = r1.map((p) => p["optimizer.learningRate"] as number);
  assert.ok(lrs.every((x) => x >= 1e-5 && x <= 1e-2));
  // log-uniform: about a third of the draws in each decade
  assert.ok(lrs.filter((x) => x < 1e-4).length > 8 && lrs.filter((x) => x > 1e-3).length > 8);
  assert.ok(
    r1.every((p) =>
      Number.isInteger(p["adversarial.fitBatchSize"]) &&
      (p["adversarial.fitBatchSize"] as number) <= 64
    ),
  );
});

Deno.test("sweep files are validated with the same quality of errors as configs", () => {
  const bad = (s: unknown, re: RegExp) => {
    assert.throws(
      () => validateSweep(s, "s.json", APP),
      (e: unknown) => e instanceof ConfigError && re.test((e as Error).message),
    );
  };
  bad({ base: "x.json", grids: {} }, /s\.json: grids: unknown key \(did you mean "grid"\?\)/);
  bad(
    { base: "x.json", grid: { "optimizer.learningrate": [1] } },
    /grid\.optimizer\.learningrate: .*did you mean "optimizer\.learningRate"/,
  );
  bad({ base: "x.json", grid: { "adversarial.iterations": [] } }, /non-empty array/);
  bad({ grid: {} }, /base: required/);
  bad({ base: "x.json", seeds: [1.5] }, /seeds\[0\]: expected an integer, got 1\.5/);
  bad({ base: "x.json", seeds: [] }, /seeds: expected a non-empty array/);
  bad({
    base: "x.json",
    random: { samples: 2, ranges: { "optimizer.learningRate": { min: 0, max: 1, scale: "log" } } },
  }, /log range needs min > 0/);
  bad(
    { base: "x.json", rank: { metric: "fid" } },
    /rank\.metric: string "fid" is not allowed; allowed: frechet/,
  );
  bad({ base: "x.json", grid: { seed: [1, 2] } }, /use "seeds"/);
});

async function tinySetup(extra: Record<string, unknown> = {}) {
  const dir = await Deno.makeTempDir({ prefix: "gan-sweep-" });
  const files = await writeIdxFiles(dir, { side: 28, train: 150, test: 40 });
  const base = await writeConfig(
    dir,
    "tiny",
    tinyConfig(files, {
      evaluator: { kind: "mlp", hidden: [8], epochs: 1, batchSize: 32 },
      evaluate: { samples: 20 },
      ...extra,
    }),
  );
  return { dir, base, results: join(dir, "results") };
}

const entries = (results: string, stage: string) =>
  [...Deno.readDirSync(join(results, "cache", stage))].filter((e) => !e.name.startsWith("."))
    .length;
const temps = (results: string, stage: string) =>
  [...Deno.readDirSync(join(results, "cache", stage))].filter((e) =>
    e.name.startsWith(".tmp") || e.name.includes(".old-")
  ).length;

Deno.test("a 4-point sweep runs shared upstream stages once, two at a time, and writes sweep.json and a report", async () => {
  const { dir, results } = await tinySetup();
  const sweep = await writeConfig(dir, "s", {
    base: "tiny.json",
    grid: { "adversarial.fitBatchSize": [4, 8], "adversarial.iterations": [2, 3] },
  });
  const dry = await sweepCli([sweep, "--results", results, "--dry-run"]);
  assert.equal(dry.code, 0, dry.stderr);
  // 5 shared (download, preprocess, both warm-ups, evaluator) + 4 x (adversarial, evaluate, report)
  assert.match(dry.stdout, /4 points, 17 stage runs needed/);
  const r = await sweepCli([sweep, "--results", results, "--jobs", "2"]);
  assert.equal(r.code, 0, r.stderr);
  for (const s of ["download", "preprocess", "train_police", "train_counterfeiter", "evaluator"]) {
    assert.equal(entries(results, s), 1, `${s} ran more than once`);
    assert.equal(temps(results, s), 0);
  }
  assert.equal(entries(results, "adversarial"), 4);
  const reportPath = r.stdout.trim().split("\n").at(-1)!;
  const rec = JSON.parse(await Deno.readTextFile(join(reportPath, "..", "sweep.json")));
  assert.deepEqual(rec.points.map((p: { status: string }) => p.status), [
    "done",
    "done",
    "done",
    "done",
  ]);
  assert.equal(typeof rec.points[0].summaries.evaluate.frechet, "number");
  const html = await Deno.readTextFile(reportPath);
  assert.ok(html.includes("<svg") && html.includes("p003"));
});

Deno.test("two concurrent processes on one cache compute each stage once and both succeed", async () => {
  const { base, results } = await tinySetup();
  const start = () =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...RUN_PERMISSIONS,
        join(ROOT, "stages/app.ts"),
        "run",
        base,
        "--results",
        results,
      ],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
  const [a, b] = await Promise.all([start(), start()]);
  assert.equal(a.code, 0, new TextDecoder().decode(a.stderr));
  assert.equal(b.code, 0, new TextDecoder().decode(b.stderr));
  const runDir = new TextDecoder().decode(a.stdout).trim().split("\n").at(-1)!.replace(
    /\/report\.html$/,
    "",
  );
  // both wrote the same run folder's record; count how often each stage ran across the two logs
  const logs = new TextDecoder().decode(a.stderr) + new TextDecoder().decode(b.stderr);
  for (
    const s of [
      "download",
      "preprocess",
      "train_police",
      "train_counterfeiter",
      "adversarial",
      "evaluator",
      "evaluate",
      "report",
    ]
  ) {
    assert.equal(entries(results, s), 1);
    assert.equal(temps(results, s), 0);
    assert.equal(logs.split(`[${s}] done in`).length - 1, 1, `${s} was computed by both processes`);
  }
  assert.ok((await Deno.stat(join(runDir, "run.json"))).isFile);
});

Deno.test("an interrupted sweep resumes and runs only the unfinished points", async () => {
  const { dir, results } = await tinySetup();
  const sweep = await writeConfig(dir, "s", {
    base: "tiny.json",
    grid: { "adversarial.iterations": [2, 3, 4] },
  });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "stages/app.ts"), "sweep", sweep, "--results", results],
    env: { NO_COLOR: "1" },
    stdout: "null",
    stderr: "null",
  }).spawn();
  const deadline = Date.now() + 60_000;
  let done = 0;
  while (Date.now() < deadline && done < 1) {
    await new Promise((r) => setTimeout(r, 100));
    try {
      for (const e of Deno.readDirSync(join(results, "sweeps"))) {
        if (!e.isDirectory) continue;
        const rec = JSON.parse(
          Deno.readTextFileSync(join(results, "sweeps", e.name, "sweep.json")),
        );
        done = rec.points.filter((p: { status: string }) => p.status === "done").length;
      }
    } catch { /* not yet */ }
  }
  child.kill("SIGKILL");
  await child.status;
  assert.ok(done >= 1 && done < 3, `expected to interrupt after 1-2 points, saw ${done} done`);
  const r = await sweepCli([sweep, "--results", results]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`${done} points already done; running ${3 - done}`));
  assert.match(r.stderr, /3 of 3 points done/);
  // the terminal ends with the points ranked best first by the sweep's figure
  const lines = r.stdout.trim().split("\n");
  const head = lines.findIndex((l) => /^#\s+frechet \(low first\)/.test(l));
  assert.ok(head >= 0, r.stdout);
  const rows = lines.slice(head + 1).filter((l) => !/^[-\s]+$/.test(l)).slice(0, 3)
    .map((l) => l.trim().split(/\s+/));
  assert.deepEqual(rows.map((c) => c[0]), ["1", "2", "3"]);
  const fd = rows.map((c) => Number(c[1]));
  assert.deepEqual([...fd].sort((a, b) => a - b), fd);
  assert.deepEqual(
    rows.map((c) => c.at(-1)).sort(),
    [2, 3, 4].map((n) => `adversarial.iterations=${n}`),
  );
});

Deno.test("a diverging point is reported as failed with its reason; the others finish", async () => {
  const { dir, results } = await tinySetup();
  const sweep = await writeConfig(dir, "s", {
    base: "tiny.json",
    grid: { "optimizer.learningRate": [0.001, 1e30] },
  });
  const r = await sweepCli([sweep, "--results", results]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /p001 failed .*(iteration \d+: )?.*NaN or infinite.*learning rate/);
  const reportPath = r.stdout.trim().split("\n").at(-1)!;
  const rec = JSON.parse(await Deno.readTextFile(join(reportPath, "..", "sweep.json")));
  assert.deepEqual(rec.points.map((p: { status: string }) => p.status), ["done", "failed"]);
  assert.match(rec.points[1].error, /NaN or infinite/);
  const html = await Deno.readTextFile(reportPath);
  assert.match(html, /class="failed"/);
});

Deno.test("a multirun (--base CONFIG -m path=a,b seed=1,2) is the sweep a file would be: same folder, report, resume", async () => {
  const { dir, results } = await tinySetup();
  const file = await writeConfig(dir, "s", {
    base: "tiny.json",
    grid: { "adversarial.fitBatchSize": [4, 8] },
    seeds: [1, 2],
  });
  const axes = ["-m", "adversarial.fitBatchSize=4,8", "seed=1,2", "--name", "s"];
  const base = join(dir, "tiny.json");
  const fromFile = await sweepCli([file, "--results", results, "--dry-run"]);
  const multi = await sweepCli(["--base", base, ...axes, "--results", results, "--dry-run"]);
  assert.equal(multi.code, 0, multi.stderr);
  assert.match(multi.stdout, /4 points/);
  const folder = (out: string) => out.trim().split("\n").at(-1);
  assert.equal(folder(multi.stdout), folder(fromFile.stdout), "the same sweep folder");
  const run = await sweepCli(["--base", base, ...axes, "--results", results, "--jobs", "2"]);
  assert.equal(run.code, 0, run.stderr);
  const report = run.stdout.trim().split("\n").at(-1)!;
  assert(report.endsWith("report.html"));
  // the file form finds the multirun's points done
  const again = await sweepCli([file, "--results", results]);
  assert.equal(again.code, 0, again.stderr);
  assert.doesNotMatch(again.stderr + again.stdout, /done in/);
  assert.equal(again.stdout.trim().split("\n").at(-1), report);
  const bad: [string[], RegExp][] = [
    [
      ["--base", base, "-m", "adversarial.fitBatchSize"],
      /adversarial\.fitBatchSize: expected path=value1,value2/,
    ],
    [["--base", base], /--base: give at least one axis/],
    [["--base", base, "-m", "seed=1", "--search", "halving"], /--search halving needs --rungs/],
    [[file, "-m"], /-m, --name and --search make a multirun: they need --base CONFIG/],
  ];
  for (const [args, want] of bad) {
    const r = await sweepCli([...args, "--results", results]);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, want);
  }
});

Deno.test("--jobs N shares the cores: each point's BLAS runs on cores/N threads, named in its keys", async () => {
  const { results, base } = await tinySetup({ backend: "fast-cpu" });
  const cores = navigator.hardwareConcurrency, want = Math.max(1, Math.floor(cores / 2));
  const cases: [string[], number][] = [
    [["--jobs", "2"], want],
    [["--jobs", "1"], cores],
    [["--jobs", "1", "--threads-per-point", "1"], 1],
  ];
  for (const [opts, threads] of cases) {
    const r = await sweepCli(
      [
        "--base",
        base,
        "-m",
        "seed=1,2",
        "--results",
        results,
        ...opts,
        "--name",
        `j${opts[1]}t${threads}`,
      ],
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`each point runs on ${threads} threads?`));
    const rec = JSON.parse(
      await Deno.readTextFile(join(r.stdout.trim().split("\n").at(-1)!, "..", "sweep.json")),
    );
    for (const p of rec.points) {
      const run = JSON.parse(await Deno.readTextFile(join(p.runDir, "run.json")));
      const adv = run.stages.find((s: { stage: string }) => s.stage === "adversarial");
      const backend = adv.inputs.runtime.backend as string;
      // without OpenBLAS the JS matmul has no threads to name
      if (/openblas/.test(backend)) assert.match(backend, new RegExp(`-t${threads}$`), backend);
    }
  }
});

Deno.test("the sweep's running line reads a point's last progress row, past a checkpoint's grid row", async () => {
  const dir = await Deno.makeTempDir();
  const rows = [
    { kind: "iteration", of: 900, iteration: 79 },
    { kind: "iteration", of: 900, iteration: 80 },
    { kind: "grid", iteration: 80, file: "adversarial/iter_000080.png" },
  ];
  await Deno.writeTextFile(
    join(dir, "a.jsonl"),
    rows.map((r) => JSON.stringify(r)).join("\n") + '\n{"kind":"itera',
  );
  const row = await lastProgressRow(join(dir, "a.jsonl"));
  assert.equal(row?.iteration, 80);
  assert.equal(
    describeRunning([{ label: "p001", stage: "adversarial", row }]),
    "running: p001 adversarial 80/900",
  );
});

Deno.test("a sweep.json of the wrong shape resumes nothing it cannot read: bad points run again, a bad record starts over", async () => {
  const { dir, results } = await tinySetup();
  const sweep = await writeConfig(dir, "s", {
    base: "tiny.json",
    grid: { "adversarial.iterations": [2, 3] },
  });
  const first = await sweepCli([sweep, "--results", results]);
  assert.equal(first.code, 0, first.stderr);
  const folder = [...Deno.readDirSync(join(results, "sweeps"))].find((e) => e.isDirectory)!.name;
  const record = join(results, "sweeps", folder, "sweep.json");
  const rec = JSON.parse(await Deno.readTextFile(record));
  rec.points[0] = { index: 0, status: "done" }; // no keys, summaries or overrides
  await Deno.writeTextFile(record, JSON.stringify(rec));
  const again = await sweepCli([sweep, "--results", results]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /sweep\.json: point 0 is not a point record; it runs again/);
  assert.match(again.stderr, /1 points? already done; running 1/);
  assert.match(again.stderr, /2 of 2 points done/);
  await Deno.writeTextFile(record, "[]");
  const fresh = await sweepCli([sweep, "--results", results]);
  assert.equal(fresh.code, 0, fresh.stderr);
  assert.match(fresh.stderr, /sweep\.json: not a sweep record; the sweep starts over/);
  assert.match(fresh.stderr, /2 of 2 points done/);
});
