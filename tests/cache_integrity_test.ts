/** Damaged entries are set aside and rebuilt end to end; random kills never leave trust. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Rng } from "../pipeline/rng.ts";
import { verifyCache } from "../pipeline/verify_cli.ts";
import { cli, cliSpawn, tinyRun } from "./helpers.ts";

async function entryDir(results: string, stage: string): Promise<string> {
  for await (const e of Deno.readDir(join(results, "cache", stage))) {
    if (/^[0-9a-f]{64}$/.test(e.name)) return join(results, "cache", stage, e.name);
  }
  throw new Error(`no ${stage} entry`);
}

const sealOfEntry = async (dir: string) =>
  JSON.parse(await Deno.readTextFile(join(dir, "meta.json"))).seal.files;

Deno.test("damaged entries are set aside, named in one line, rebuilt to the same bits; verify exits 1 then 0", async () => {
  const { cfg, results } = await tinyRun();
  const first = await cli(["run", cfg, "--results", results]);
  assert.equal(first.code, 0, first.stderr);
  const pre = await entryDir(results, "preprocess");
  const cf = await entryDir(results, "train_counterfeiter");
  const preSeal = await sealOfEntry(pre), cfSeal = await sealOfEntry(cf);

  await Deno.truncate(join(pre, "train_x.npy"), 100);
  await Deno.remove(join(cf, "counterfeiter", "weights.bin"));
  const v = await cli(["verify", "--results", results, "--quiet"]);
  assert.equal(v.code, 1, v.stderr);
  assert.match(v.stdout, /DAMAGED preprocess\/\w{12}: train_x\.npy is 100 bytes, sealed as \d+/);
  assert.match(
    v.stdout,
    /DAMAGED train_counterfeiter\/\w{12}: counterfeiter\/weights\.bin is missing/,
  );

  const explain = await cli(["run", cfg, "--results", results, "--explain"]);
  assert.match(explain.stdout, /preprocess\s+\w+\s+runs because the cached entry is damaged/);

  const second = await cli(["run", cfg, "--results", results]);
  assert.equal(second.code, 0, second.stderr);
  assert.match(
    second.stderr,
    /\[preprocess\] damaged cache entry \w{12}: train_x\.npy is 100 bytes, sealed as \d+; moved to \S+\.damaged\S+; rebuilding/,
  );
  // rebuilt to the very same bits, under the same key: downstream entries stay valid
  assert.deepEqual(await sealOfEntry(pre), preSeal);
  assert.deepEqual(await sealOfEntry(cf), cfSeal);
  const rec = JSON.parse(
    await Deno.readTextFile(join(second.stdout.trim().split("\n").at(-1)!, "..", "run.json")),
  );
  const status = Object.fromEntries(
    rec.stages.map((s: { stage: string; status: string }) => [s.stage, s.status]),
  );
  assert.equal(status.preprocess, "ran");
  assert.equal(status.train_police, "cached");
  assert.equal(status.train_counterfeiter, "ran");
  assert.equal(status.adversarial, "cached");
  const ok = await cli(["verify", "--results", results, "--quiet"]);
  assert.equal(ok.code, 0, ok.stdout);
  assert.match(ok.stdout, /\d+ entries checked, 0 damaged/);
});

Deno.test("bad --results and --set values are one-line usage errors (exit 2)", async () => {
  const { dir, cfg } = await tinyRun();
  const file = join(dir, "a-file");
  await Deno.writeTextFile(file, "");
  const r1 = await cli(["run", cfg, "--results", file]);
  assert.equal(r1.code, 2);
  assert.match(r1.stderr, /--results \S+ is a file, not a folder/);
  const r2 = await cli(["run", cfg, "--set", "adversarial.iterations={5"]);
  assert.equal(r2.code, 2);
  assert.match(r2.stderr, /--set adversarial\.iterations=\{5: the value is not valid JSON/);
  // a folder nobody may write into: read-only for a user; for root (CI), who writes anywhere
  // else, one marked immutable
  const ro = join(dir, "ro");
  await Deno.mkdir(ro, { mode: 0o555 });
  const root = Deno.uid() === 0;
  if (root) {
    const c = await new Deno.Command("chattr", { args: ["+i", ro] }).output();
    assert.equal(c.code, 0, `chattr +i: ${new TextDecoder().decode(c.stderr)}`);
  }
  try {
    const r3 = await cli(["run", cfg, "--results", join(ro, "results")]);
    assert.equal(r3.code, 2);
    assert.match(r3.stderr, /--results \S+ is not writable \(.+\); choose a writable folder/);
  } finally {
    if (root) await new Deno.Command("chattr", { args: ["-i", ro] }).output();
  }
});

Deno.test("two runs of one config at once each keep their own record", async () => {
  const { cfg, results } = await tinyRun();
  const [a, b] = await Promise.all([
    cli(["run", cfg, "--results", results, "--until", "adversarial"]),
    cli(["run", cfg, "--results", results, "--until", "adversarial"]),
  ]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const runDir = a.stdout.trim().split("\n").at(-1)!;
  const records: { stages: { stage: string; status: string }[] }[] = [];
  for await (const e of Deno.readDir(join(runDir, "records"))) {
    records.push(JSON.parse(await Deno.readTextFile(join(runDir, "records", e.name))));
  }
  assert.equal(records.length, 2);
  // between them, every stage ran exactly once
  for (const stage of ["preprocess", "train_police", "adversarial"]) {
    const ran = records.filter((r) => r.stages.find((s) => s.stage === stage)?.status === "ran");
    assert.equal(ran.length, 1, `${stage} ran ${ran.length} times`);
  }
});

/** Watches for the adversarial stage's temporary entry to hold its checkpoints. */
async function waitForCommitWindow(cache: string, timeoutMs = 20_000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    try {
      for await (const e of Deno.readDir(cache)) {
        if (!e.name.startsWith(".tmp-")) continue;
        try {
          await Deno.stat(join(cache, e.name, "checkpoints"));
          return true;
        } catch { /* not yet */ }
      }
    } catch { /* no folder yet */ }
    await new Promise((r) => setTimeout(r, 2));
  }
  return false;
}

Deno.test("random kills (seeded) and kills in the commit window never leave a trusted bad entry", async () => {
  const extra = {
    adversarial: { iterations: 200, batchSize: 16, fitBatchSize: 8, checkpointEvery: 20 },
  };
  const ref = await tinyRun(extra);
  const whole = await cli(["run", ref.cfg, "--results", ref.results]);
  assert.equal(whole.code, 0, whole.stderr);
  // timed on a second, empty cache: the first run of a fresh clone also pays Deno's module
  // cold start, and kill delays scaled by it let most runs finish before their kill
  const timed = await tinyRun(extra);
  const t0 = performance.now();
  assert.equal((await cli(["run", timed.cfg, "--results", timed.results])).code, 0);
  const fullMs = performance.now() - t0;
  const read = async (results: string, stage: string, file: string) =>
    await Deno.readTextFile(join(await entryDir(results, stage), file));
  const strip = (h: string) =>
    JSON.stringify(JSON.parse(h).map((r: Record<string, number>) => ({ ...r, seconds: 0 })));
  const refHistory = strip(await read(ref.results, "adversarial", "history.json"));
  const refMetrics = await read(ref.results, "evaluate", "metrics.json");

  const rng = new Rng(2026);
  let kills = 0;
  // at least two cycles; more (up to six) when the timer let runs finish before their kill, as
  // on a fast or idle machine, so the kill count does not rest on timing luck
  for (let cycle = 0; cycle < 6 && (cycle < 2 || kills < 10); cycle++) {
    const { cfg, results } = await tinyRun(extra);
    // kill, rerun, kill, ... until a run gets to the end before its kill
    for (let attempt = 0; attempt < 12; attempt++) {
      const child = cliSpawn(["run", cfg, "--results", results]);
      const status = child.status;
      let done = false;
      status.then(() => (done = true));
      if (attempt === 2) {
        // aimed: between the checkpoints landing in the temporary entry and its seal
        await waitForCommitWindow(join(results, "cache", "adversarial"), 8000);
      } else {
        await new Promise((r) => setTimeout(r, 100 + Math.floor(rng.uniform() * fullMs / 3)));
      }
      if (!done) {
        child.kill("SIGKILL");
        kills++;
      }
      const code = (await status).code;
      await child.stdout.cancel();
      await child.stderr.cancel();
      // whatever the kill hit, every entry folder that exists is sealed and intact
      const v = await verifyCache(results);
      assert.deepEqual(v.damaged, [], `after kill ${kills}`);
      if (done && code === 0) break;
    }
    const final = await cli(["run", cfg, "--results", results]);
    assert.equal(final.code, 0, final.stderr);
    assert.equal(strip(await read(results, "adversarial", "history.json")), refHistory);
    const ckpts = [];
    for await (
      const e of Deno.readDir(join(await entryDir(results, "adversarial"), "checkpoints"))
    ) ckpts.push(e.name);
    assert.equal(ckpts.length, 10, `checkpoints: ${ckpts.sort()}`);
    assert.equal(await read(results, "evaluate", "metrics.json"), refMetrics);
  }
  assert.ok(kills >= 10, `only ${kills} kills landed`);
  console.log(`survived ${kills} kills`);
});
