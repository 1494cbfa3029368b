/**
 * The Slurm executor against a real single-node cluster (`pipeline/sweep/local-cluster.sh`;
 * CI starts one). Skipped, saying so, where no cluster answers; never skipped in CI.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { arraySpec } from "../pipeline/sweep/slurm.ts";
import { ROOT, sweepCli, tinyConfig, writeConfig, writeIdxFiles } from "./helpers.ts";

function clusterUp(): boolean {
  try {
    const out = new Deno.Command("sinfo", { args: ["-h", "-o", "%T"], stdout: "piped" })
      .outputSync();
    return out.code === 0 && /idle|mixed|allocated/.test(new TextDecoder().decode(out.stdout));
  } catch {
    return false;
  }
}

const up = clusterUp();
if (!up) {
  if (Deno.env.get("CI")) {
    throw new Error("CI must run the Slurm tests: start the cluster (.ci/run does)");
  }
  console.error(
    "slurm_test: no Slurm cluster answers (sinfo); skipping. Start one with sudo pipeline/sweep/local-cluster.sh start",
  );
}

async function setup() {
  const dir = await Deno.makeTempDir({ prefix: "gan-slurm-" });
  const files = await writeIdxFiles(dir, { side: 28, train: 150, test: 40 });
  await writeConfig(
    dir,
    "tiny",
    tinyConfig(files, {
      backend: "fast-cpu",
      evaluator: { kind: "mlp", hidden: [8], epochs: 1, batchSize: 32 },
      evaluate: { samples: 20 },
      adversarial: { iterations: 300, batchSize: 16, fitBatchSize: 8, checkpointEvery: 20 },
    }),
  );
  const sweep = await writeConfig(dir, "s", {
    base: "tiny.json",
    grid: { "adversarial.fitBatchSize": [4, 8] },
    seeds: [1, 2],
  });
  return { dir, sweep };
}

interface Rec {
  points: { status: string; keys: Record<string, string>; summaries: Record<string, unknown> }[];
}
const sweepJson = async (reportPath: string): Promise<Rec> =>
  JSON.parse(await Deno.readTextFile(join(reportPath.trim(), "..", "sweep.json")));

async function historyOf(results: string, key: string): Promise<string> {
  const h = JSON.parse(
    await Deno.readTextFile(join(results, "cache", "adversarial", key, "history.json")),
  );
  return JSON.stringify(h.map((r: Record<string, number>) => ({ ...r, seconds: 0 })));
}

Deno.test("array specs", () => {
  assert.equal(arraySpec(4), "0-3");
  assert.equal(arraySpec(4, 2), "0-3%2");
});

Deno.test({
  name:
    "a 4-point sweep on Slurm: a task cancelled mid-run resumes on re-submit; bits equal the local run's",
  ignore: !up,
  async fn() {
    const { dir, sweep } = await setup();
    const local = join(dir, "local"), cluster = join(dir, "cluster");
    // 2 threads a point, as the Slurm tasks get (--cpus-per-task 2): the keys name the count
    const l = await sweepCli([
      sweep,
      "--results",
      local,
      "--jobs",
      "2",
      "--threads-per-point",
      "2",
    ]);
    assert.equal(l.code, 0, l.stderr);

    // submit detached, cancel task 2 once its run has checkpointed, let the rest finish
    const sub = await sweepCli([
      sweep,
      "--results",
      cluster,
      "--executor",
      "slurm",
      "--cpus-per-task",
      "2",
      "--max-parallel",
      "1",
      "--detach",
    ]);
    assert.equal(sub.code, 0, sub.stderr);
    const jobId = sub.stderr.match(/submitted Slurm job (\d+): 4 tasks \(--array=0-3%1\)/)?.[1];
    assert.ok(jobId, sub.stderr);
    const work = join(cluster, "cache", "adversarial");
    let cancelled = false;
    for (let i = 0; i < 600 && !cancelled; i++) {
      const q = new TextDecoder().decode(
        new Deno.Command("squeue", {
          args: ["-h", "-r", "-j", jobId, "-o", "%K %T"],
          stdout: "piped",
        }).outputSync().stdout,
      );
      if (/^2 RUNNING$/m.test(q)) {
        // wait for its first checkpoint, so the re-submission has something to resume
        try {
          const ckpt = [...Deno.readDirSync(work)].some((e) =>
            e.name.startsWith(".work-") &&
            [...Deno.readDirSync(join(work, e.name))].some((f) => f.name === "state")
          );
          if (ckpt) {
            new Deno.Command("scancel", { args: [`${jobId}_2`] }).outputSync();
            cancelled = true;
          }
        } catch { /* not yet */ }
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(cancelled, "task 2 never ran");
    // status until the job is over: the cancelled task is a failed point naming its log
    let st = { code: 0, stdout: "", stderr: "" };
    for (let i = 0; i < 300; i++) {
      st = await sweepCli(["status", sweep, "--results", cluster]);
      if (!/[1-9]\d* running|[1-9]\d* pending/.test(st.stdout)) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    assert.equal(st.code, 1, st.stdout + st.stderr); // one point failed
    assert.match(st.stdout, /3 done, 0 running, 0 pending, 1 failed/);
    const report = await Deno.readTextFile(st.stdout.trim().split("\n").at(-1)!);
    assert.match(report, /ended without a result .*log \S+_2\.out/);

    // re-submit and wait: only the cancelled point runs, and it resumes from its checkpoint
    const again = await sweepCli([
      sweep,
      "--results",
      cluster,
      "--executor",
      "slurm",
      "--cpus-per-task",
      "2",
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /submitted Slurm job \d+: 1 tasks/);
    assert.match(again.stderr, /\[adversarial\]|s-p00\d done/);
    const recL = await sweepJson(l.stdout.trim().split("\n").at(-1)!);
    const recC = await sweepJson(again.stdout.trim().split("\n").at(-1)!);
    assert.deepEqual(recC.points.map((p) => p.status), ["done", "done", "done", "done"]);
    for (let i = 0; i < 4; i++) {
      assert.deepEqual(recC.points[i].keys, recL.points[i].keys, `point ${i} keys`);
      const k = recL.points[i].keys.adversarial;
      assert.equal(await historyOf(cluster, k), await historyOf(local, k), `point ${i} history`);
      assert.deepEqual(recC.points[i].summaries.evaluate, recL.points[i].summaries.evaluate);
    }
    // the re-submitted task resumed the cancelled run from its checkpoint
    const logDir = join(st.stdout.trim().split("\n").at(-1)!, "..", "logs");
    const resumed = [...Deno.readDirSync(logDir)].filter((e) =>
      /resuming from the checkpoint at iteration \d+/.test(
        Deno.readTextFileSync(join(logDir, e.name)),
      )
    );
    assert.equal(resumed.length, 1, "exactly the cancelled point resumed");
  },
});

Deno.test({
  name: "Slurm errors are one line: an unknown partition, a job Slurm rejects",
  ignore: !up,
  async fn() {
    const { sweep } = await setup();
    const results = await Deno.makeTempDir();
    const p = await sweepCli([
      sweep,
      "--results",
      results,
      "--executor",
      "slurm",
      "--partition",
      "nope",
    ]);
    assert.equal(p.code, 2);
    assert.match(p.stderr, /--partition nope: no such partition; partitions: \w+/);
    const r = await sweepCli([
      sweep,
      "--results",
      results,
      "--executor",
      "slurm",
      "--sbatch-arg=--time=notatime",
      "--detach",
    ]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Slurm rejected the job: sbatch: error: Invalid --time specification/);
  },
});

Deno.test("without sbatch on PATH the Slurm executor says what to install", async () => {
  const { sweep } = await setup();
  const r = await sweepCli(
    [sweep, "--results", await Deno.makeTempDir(), "--executor", "slurm", "--detach"],
    { PATH: "/nonexistent" },
  );
  assert.equal(r.code, 2);
  assert.match(r.stderr, /no sbatch on PATH: .*slurm-client.*--executor local/);
});

Deno.test({
  name: "Ctrl-C while waiting with --cancel-on-interrupt cancels the job and exits 130",
  ignore: !up,
  async fn() {
    const { sweep } = await setup();
    const results = await Deno.makeTempDir();
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        join(ROOT, "stages/app.ts"),
        "sweep",
        sweep,
        "--results",
        results,
        "--executor",
        "slurm",
        "--cancel-on-interrupt",
        "--sbatch-arg=--begin=now+1hour", // stays pending: nothing finishes before the Ctrl-C
      ],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let err = "";
    while (!/submitted Slurm job (\d+)/.test(err)) {
      const { value, done } = await reader.read();
      if (done) break;
      err += value;
    }
    const jobId = err.match(/submitted Slurm job (\d+)/)?.[1];
    assert.ok(jobId, err);
    child.kill("SIGINT");
    const status = await child.status;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      err += value;
    }
    await child.stdout.cancel();
    assert.equal(status.code, 130);
    assert.match(err, new RegExp(`cancelled Slurm job ${jobId}`));
    const q = new TextDecoder().decode(
      new Deno.Command("squeue", { args: ["-h", "-j", jobId!], stdout: "piped", stderr: "null" })
        .outputSync().stdout,
    );
    assert.equal(q.trim(), "", `still queued: ${q}`);
  },
});

Deno.test({
  name: "a halving search on Slurm: one job per rung run, promotions continue the shorter runs",
  ignore: !up,
  async fn() {
    const { dir } = await setup();
    const sweep = await writeConfig(dir, "h", {
      base: "tiny.json",
      grid: { "optimizer.learningRate": [0.0003, 0.001, 0.003] },
      search: { method: "halving", metric: "frechet", eta: 3, rungs: [10, 30] },
    });
    const r = await sweepCli([
      sweep,
      "--results",
      join(dir, "h-results"),
      "--executor",
      "slurm",
      "--cpus-per-task",
      "1",
      "--max-parallel",
      "2",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /halving spent 50 of the full grid's 90 adversarial\.iterations/);
    const html = await Deno.readTextFile(r.stdout.trim().split("\n").at(-1)!);
    assert.match(html, /finished every rung \(30\)/);
    assert.equal((html.match(/stopped at rung 0 \(10\)/g) ?? []).length, 2);
  },
});
