/**
 * Faults a hostile user meets: bits flipped inside a sealed entry (same size), `--verify`
 * asked to repair, `gc` while a run is in flight, and a training that diverges.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cli, cliSpawn, tinyRun } from "./helpers.ts";

/** The one sealed entry of a stage (the test runs make one each, unless said). */
async function entries(results: string, stage: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(join(results, "cache", stage))) {
      if (/^[0-9a-f]{64}$/.test(e.name)) out.push(join(results, "cache", stage, e.name));
    }
  } catch { /* no such stage folder */ }
  return out;
}

/** Flips the sign bit of the first float in a weights file: same size, different numbers. */
async function flipWeights(entry: string, net: string): Promise<void> {
  const p = join(entry, net, "weights.bin");
  const bytes = await Deno.readFile(p);
  bytes[3] ^= 0x80;
  await Deno.writeFile(p, bytes);
}

const metricsOf = async (results: string) => {
  const [e] = await entries(results, "evaluate");
  return JSON.parse(await Deno.readTextFile(join(e, "metrics.json")));
};

Deno.test("a stage never computes from bits that differ from their seal: the input is rebuilt first", async () => {
  const { cfg, results, dir } = await tinyRun();
  assert.equal((await cli(["run", cfg, "--results", results])).code, 0);
  const [adv] = await entries(results, "adversarial");
  await flipWeights(adv, "counterfeiter");
  // a plain run (sizes only) trusts the cached chain; an evaluate that must be recomputed does not
  await Deno.remove((await entries(results, "evaluate"))[0], { recursive: true });
  const r = await cli(["run", cfg, "--results", results]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stderr,
    /\[evaluate\] its input adversarial\/\w{12} is damaged \(counterfeiter\/weights\.bin does not match its sealed SHA-256\); moved to \S+; rebuilding adversarial first/,
  );
  assert.match(r.stderr, /\[adversarial\] running/);
  // the metrics are those of a clean run
  const clean = join(dir, "clean");
  assert.equal((await cli(["run", cfg, "--results", clean])).code, 0);
  assert.deepEqual(await metricsOf(results), await metricsOf(clean));
  const v = await cli(["verify", "--results", results, "--quiet"]);
  assert.equal(v.code, 0, v.stdout);
});

Deno.test("run --verify rebuilds an entry whose bits were flipped instead of using it", async () => {
  const { cfg, results } = await tinyRun();
  assert.equal((await cli(["run", cfg, "--results", results])).code, 0);
  const [adv] = await entries(results, "adversarial");
  await flipWeights(adv, "police");
  const v1 = await cli(["verify", "--results", results, "--quiet"]);
  assert.equal(v1.code, 1);
  assert.match(v1.stdout, /run --verify` sets each one its config uses aside and rebuilds it/);
  const r = await cli(["run", cfg, "--results", results, "--verify"]);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /computed by another process/);
  assert.match(
    r.stderr,
    /\[adversarial\] damaged cache entry \w{12}: police\/weights\.bin does not match its sealed SHA-256; moved to \S+; rebuilding/,
  );
  const v2 = await cli(["verify", "--results", results, "--quiet"]);
  assert.equal(v2.code, 0, v2.stdout);
});

Deno.test("gc while a run is in flight removes nothing it will use, nor its run folder", async () => {
  const { cfg, results } = await tinyRun();
  assert.equal((await cli(["run", cfg, "--results", results])).code, 0);
  // a longer loop: the evaluator it will use later is cached, planned from the start
  const child = cliSpawn([
    "run",
    cfg,
    "--results",
    results,
    "--set",
    "adversarial.iterations=1500",
    "--set",
    "adversarial.checkpointEvery=1000",
  ]);
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let log = "";
  while (!log.includes("[adversarial] running")) {
    const { value, done } = await reader.read();
    if (done) break;
    log += value;
  }
  assert.match(log, /\[adversarial\] running/, log);
  const gc = await cli(["gc", "--results", results, "--keep-runs", "0"]);
  assert.equal(gc.code, 0, gc.stderr);
  assert.match(gc.stdout, /kept evaluator\/\w{12}: in use by another process/);
  assert.match(gc.stdout, /kept run \S+: in use by another process/);
  const rest = (async () => {
    while (true) {
      const { value, done } = await reader.read();
      if (done) return;
      log += value;
    }
  })();
  const [status] = await Promise.all([child.status, rest, child.stdout.cancel()]);
  assert.equal(status.code, 0, log);
  assert.match(log, /\[evaluator\] cached/);
});

Deno.test("a diverging loop stops at the iteration that blew up, names the knob and seals nothing", async () => {
  const { cfg, results } = await tinyRun();
  const r = await cli([
    "run",
    cfg,
    "--results",
    results,
    "--set",
    "adversarial.iterations=40",
    "--set",
    "optimizer.counterfeiter.learningRate=50",
  ]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    /iteration \d+: the (police|counterfeiter)'s loss reached \S+, past adversarial\.lossLimit \(1000\): the training diverged; lower optimizer\.learningRate/,
  );
  assert.equal(r.stderr.trim().split("\n").filter((l) => l.startsWith("error")).length, 1);
  assert.deepEqual(await entries(results, "adversarial"), [], "nothing sealed as a result");
  assert.deepEqual(await entries(results, "evaluate"), []);
});
