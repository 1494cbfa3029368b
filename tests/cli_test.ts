/** End to end: the CLI in a subprocess over tiny generated data in a temp results folder. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { sha256Hex } from "../pipeline/hash.ts";
import { readNpy } from "../stages/formats/npy.ts";
import {
  cli,
  cliSpawn,
  gzip,
  idxSet,
  serve,
  tinyConfig,
  writeConfig,
  writeIdxFiles,
} from "./helpers.ts";

async function setup(extra: Record<string, unknown> = {}) {
  const dir = await Deno.makeTempDir({ prefix: "gan-cli-" });
  const files = await writeIdxFiles(dir);
  const cfg = await writeConfig(dir, "tiny", tinyConfig(files, extra));
  return { dir, cfg, results: join(dir, "results") };
}

/** Waits (up to a minute) until an adversarial loop under `work` has written a checkpoint. */
async function waitForCheckpoint(work: string): Promise<boolean> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    try {
      for await (const e of Deno.readDir(work)) {
        if (e.name.startsWith(".work-")) {
          await Deno.stat(join(work, e.name, "state", "seal.json"));
          return true;
        }
      }
    } catch { /* not yet */ }
  }
  return false;
}

const statuses = (lastLine: string) =>
  Deno.readTextFile(join(lastLine.replace(/\/report\.html$/, ""), "run.json")).then((t) =>
    JSON.parse(t).stages.map((s: { stage: string; status: string }) => `${s.stage}:${s.status}`)
  );

Deno.test("a second run of the same config runs no stage and says so", async () => {
  const { cfg, results } = await setup();
  const a = await cli(["run", cfg, "--results", results]);
  assert.equal(a.code, 0, a.stderr);
  const last = a.stdout.trim().split("\n").at(-1)!;
  assert.ok(last.startsWith(join(results, "runs", "tiny-")) && last.endsWith("report.html"));
  const runDir = last.replace(/\/report\.html$/, "");
  assert.ok((await statuses(runDir)).every((s: string) => s.endsWith(":ran")));
  const b = await cli(["run", cfg, "--results", results]);
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stderr, /all 8 stages cached; nothing ran/);
  assert.ok((await statuses(runDir)).every((s: string) => s.endsWith(":cached")));
  const rec = JSON.parse(await Deno.readTextFile(join(runDir, "run.json")));
  assert.equal(rec.seed, 5);
  assert.equal(rec.environment.runtime.backend, "cpu");
  assert.ok("dirty" in rec.environment.git);
  // the report says which CPU and runtime its figures come from
  const html = await Deno.readTextFile(last);
  assert.ok(html.includes(` on ${rec.environment.cpu}. Runtime: backend cpu, tfjs `));
});

Deno.test("changing one field re-runs exactly the stages that depend on it; --explain says why", async () => {
  const { cfg, results } = await setup();
  assert.equal((await cli(["run", cfg, "--results", results])).code, 0);
  const ex = await cli([
    "run",
    cfg,
    "--results",
    results,
    "--explain",
    "--set",
    "preprocess.trainSubset=100",
  ]);
  assert.equal(ex.code, 0, ex.stderr);
  assert.match(ex.stdout, /download\s+\w+\s+cached/);
  // changes are told against this config's previous run (seed 5), not the newest entry
  const seed = await cli(["run", cfg, "--results", results, "--explain", "--set", "seed=7"]);
  assert.match(seed.stdout, /train_police\s+\w+\s+runs because seed changed \(5 -> 7\)/);
  assert.match(
    ex.stdout,
    /preprocess\s+\w+\s+runs because preprocess\.trainSubset changed \(null -> 100\)/,
  );
  assert.match(
    ex.stdout,
    /train_police\s+\(pending\)\s+runs because waits for preprocess: cached if its outputs come out the same/,
  );
  const r = await cli(["run", cfg, "--results", results, "--set", "preprocess.trainSubset=100"]);
  assert.equal(r.code, 0, r.stderr);
  const st = await statuses(r.stdout.trim().split("\n").at(-1)!);
  assert.deepEqual(st, [
    "download:cached",
    "preprocess:ran",
    "train_police:ran",
    // early cutoff: the warm-up takes the first rows, the same in both subsets, so the police
    // comes out the same bits and the counterfeiter's warm-up (which reads only it) is cached
    "train_counterfeiter:cached",
    "adversarial:ran",
    "evaluator:ran",
    "evaluate:ran",
    "report:ran",
  ]);
  // a field only the loop reads re-runs the loop and what reads its results, nothing upstream
  const r2 = await cli(["run", cfg, "--results", results, "--set", "adversarial.iterations=2"]);
  const st2 = await statuses(r2.stdout.trim().split("\n").at(-1)!);
  assert.deepEqual(st2, [
    "download:cached",
    "preprocess:cached",
    "train_police:cached",
    "train_counterfeiter:cached",
    "adversarial:ran",
    "evaluator:cached",
    "evaluate:ran",
    "report:ran",
  ]);
});

Deno.test("--until and --force", async () => {
  const { cfg, results } = await setup();
  const a = await cli(["run", cfg, "--results", results, "--until", "preprocess"]);
  assert.equal(a.code, 0, a.stderr);
  assert.deepEqual(await statuses(a.stdout.trim().split("\n").at(-1)!), [
    "download:ran",
    "preprocess:ran",
  ]);
  const b = await cli([
    "run",
    cfg,
    "--results",
    results,
    "--until",
    "preprocess",
    "--force",
    "preprocess",
  ]);
  assert.deepEqual(await statuses(b.stdout.trim().split("\n").at(-1)!), [
    "download:cached",
    "preprocess:ran",
  ]);
  const c = await cli(["run", cfg, "--results", results, "--until", "nope"]);
  assert.equal(c.code, 2);
  assert.match(c.stderr, /--until nope: no such stage/);
});

Deno.test("preprocess writes .npy train/test splits in [0,1]", async () => {
  const { cfg, results } = await setup({ preprocess: { trainSubset: 50, subsetMode: "random" } });
  const a = await cli(["run", cfg, "--results", results, "--until", "preprocess"]);
  assert.equal(a.code, 0, a.stderr);
  const dirs = [];
  for await (const e of Deno.readDir(join(results, "cache", "preprocess"))) {
    if (!e.name.startsWith(".")) dirs.push(e.name);
  }
  assert.equal(dirs.length, 1);
  const x = await readNpy(join(results, "cache", "preprocess", dirs[0], "train_x.npy"));
  const y = await readNpy(join(results, "cache", "preprocess", dirs[0], "train_y.npy"));
  const t = await readNpy(join(results, "cache", "preprocess", dirs[0], "test_x.npy"));
  assert.deepEqual(x.shape, [50, 36]);
  assert.deepEqual(y.shape, [50]);
  assert.deepEqual(t.shape, [40, 36]);
  assert.ok(x.data.every((v) => v >= 0 && v <= 1));
  assert.ok(x.data.some((v) => v > 0.7));
});

Deno.test("bad configs exit 2 naming the field; bad data exits 1 naming the file", async () => {
  const { dir, cfg, results } = await setup();
  const unknown = await cli(["run", cfg, "--results", results, "--set", "adversarial.batchsize=3"]);
  assert.equal(unknown.code, 2);
  assert.match(
    unknown.stderr,
    /adversarial\.batchsize: unknown key \(did you mean "batchSize"\?\)/,
  );
  const missing = await cli(["run", join(dir, "nope.json"), "--results", results]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /config file not found/);
  // a truncated IDX file
  const files = await writeIdxFiles(dir);
  const bytes = await Deno.readFile(files.trainImages);
  await Deno.writeFile(files.trainImages, bytes.subarray(0, bytes.length - 10));
  const bad = await writeConfig(dir, "bad", tinyConfig(files));
  const r = await cli(["run", bad, "--results", results]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /trainImages\.idx: truncated IDX file/);
  assert.equal(r.stderr.trim().split("\n").filter((l) => l.startsWith("error:")).length, 1);
  // nothing was cached for the failed stage
  const entries = [];
  for await (const e of Deno.readDir(join(results, "cache", "download"))) entries.push(e.name);
  assert.ok(entries.every((n) => n.startsWith(".") || n.length === 64));
});

Deno.test("download over http: gz files, checksums checked, mismatch is an error and caches nothing", async () => {
  const set = idxSet();
  const gz: Record<string, Uint8Array> = {};
  for (const [k, v] of Object.entries(set)) gz[k] = await gzip(v);
  const s = serve((req) => new Response(gz[new URL(req.url).pathname.slice(1)] as BodyInit));
  try {
    const dir = await Deno.makeTempDir();
    const files = Object.fromEntries(Object.keys(gz).map((k) => [k, `${s.base}/${k}`]));
    const sha256 = Object.fromEntries(Object.entries(gz).map(([k, v]) => [k, sha256Hex(v)]));
    const cfgObj = tinyConfig({}, { data: { source: "url", files, sha256, retries: 0 } });
    const good = await writeConfig(dir, "good", cfgObj);
    const results = join(dir, "results");
    const r = await cli(["run", good, "--results", results, "--until", "preprocess"]);
    assert.equal(r.code, 0, r.stderr);
    const wrong = { ...sha256, testLabels: "0".repeat(64) };
    const bad = await writeConfig(
      dir,
      "bad",
      tinyConfig({}, { data: { source: "url", files, sha256: wrong } }),
    );
    const b = await cli(["run", bad, "--results", results, "--until", "preprocess"]);
    assert.equal(b.code, 1);
    assert.match(b.stderr, /testLabels: checksum mismatch: expected sha256 0000/);
  } finally {
    await s.close();
  }
});

Deno.test("killing a run mid-stage leaves nothing trusted; the next run resumes and finishes", async () => {
  const { cfg, results } = await setup({
    adversarial: { iterations: 400, batchSize: 16, fitBatchSize: 8, checkpointEvery: 5 },
  });
  const child = cliSpawn(["run", cfg, "--results", results]);
  const work = join(results, "cache", "adversarial");
  // wait until the loop has checkpointed at least once, then kill it hard
  const checkpointed = await waitForCheckpoint(work);
  assert.ok(checkpointed, "the run never reached a checkpoint");
  child.kill("SIGKILL");
  await child.status;
  await child.stdout.cancel();
  await child.stderr.cancel();
  for await (const e of Deno.readDir(work)) {
    assert.ok(
      e.name.startsWith("."),
      `a complete-looking entry ${e.name} was left by a killed run`,
    );
  }
  const r = await cli(["run", cfg, "--results", results]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /resuming from the checkpoint at iteration \d+/);
  const names = [];
  for await (const e of Deno.readDir(work)) names.push(e.name);
  assert.equal(names.filter((n) => !n.startsWith(".")).length, 1);
  // only the (empty, reusable) lock files stay: no temporary or work folders
  const left = names.filter((n) => n.startsWith(".") && !n.startsWith(".lock-"));
  assert.equal(left.length, 0, `left behind: ${left}`);
});

Deno.test("a killed run's damaged resume state: verify names it (exit 1), the next run sets it aside and starts over", async () => {
  const { cfg, results } = await setup({
    adversarial: { iterations: 400, batchSize: 16, fitBatchSize: 8, checkpointEvery: 5 },
  });
  const child = cliSpawn(["run", cfg, "--results", results]);
  const work = join(results, "cache", "adversarial");
  assert.ok(await waitForCheckpoint(work), "the run never reached a checkpoint");
  child.kill("SIGKILL");
  await child.status;
  await child.stdout.cancel();
  await child.stderr.cancel();
  // the killed run wrote no record yet: runs lists it as interrupted, not as nothing
  const listed = await cli(["runs", "--results", results, "--json"]);
  assert.equal(listed.code, 0, listed.stderr);
  assert.deepEqual(JSON.parse(listed.stdout).map((r: { status: string }) => r.status), [
    "interrupted",
  ]);
  const folder = [...Deno.readDirSync(work)].find((e) => e.name.startsWith(".work-"))!.name;
  const weights = join(work, folder, "state", "police", "weights.bin");
  const bytes = await Deno.readFile(weights);
  bytes[5] ^= 8;
  await Deno.writeFile(weights, bytes);
  const v = await cli(["verify", "--results", results]);
  assert.equal(v.code, 1, v.stdout);
  assert.match(
    v.stdout,
    new RegExp(
      `DAMAGED adversarial \\(resume state\\)/${
        folder.slice(6, 18)
      }: police/weights.bin does not match its seal`,
    ),
  );
  const r = await cli(["run", cfg, "--results", results]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stderr,
    /\[adversarial\] resume state at \d+ is damaged: police\/weights.bin does not match its seal; set aside in \S+; starting from the beginning/,
  );
  assert.doesNotMatch(r.stderr, /resuming from the checkpoint/);
  const again = await cli(["verify", "--results", results]);
  assert.equal(again.code, 0, again.stdout);
});

Deno.test("Ctrl-C (SIGINT) exits 130 with a one-line note; the next run resumes", async () => {
  const { cfg, results } = await setup({
    adversarial: { iterations: 400, batchSize: 16, fitBatchSize: 8, checkpointEvery: 5 },
  });
  const child = cliSpawn(["run", cfg, "--results", results]);
  const work = join(results, "cache", "adversarial");
  const started = await waitForCheckpoint(work);
  assert.ok(started, "the loop never reached a checkpoint");
  child.kill("SIGINT");
  const out = await child.output();
  assert.equal(out.code, 130);
  assert.match(new TextDecoder().decode(out.stderr), /interrupted: nothing half-written is kept/);
  const r = await cli(["run", cfg, "--results", results]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /resuming from the checkpoint at iteration \d+/);
});
