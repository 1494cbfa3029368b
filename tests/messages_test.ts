/** Bad input gets one line naming the field or file and the fix, exit 2, and creates nothing. */
import assert from "node:assert/strict";
import { APP } from "../stages/app.ts";
import { commandNames } from "../pipeline/cli.ts";
import { join } from "node:path";
import { cli, seedRuns, sweepCli, tinyConfig, writeConfig, writeIdxFiles } from "./helpers.ts";

const exists = async (p: string) => {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
};

async function setup() {
  const dir = await Deno.makeTempDir();
  const files = await writeIdxFiles(dir);
  const cfg = await writeConfig(dir, "tiny", tinyConfig(files));
  return { dir, cfg, files, results: join(dir, "results") };
}

Deno.test("a bad --set value is blamed on the --set, with the field, and creates nothing", async () => {
  const { cfg, results } = await setup();
  const inf = await cli([
    "run",
    cfg,
    "--results",
    results,
    "--set",
    "adversarial.iterations=1e309",
  ]);
  assert.equal(inf.code, 2);
  assert.match(inf.stderr, /--set adversarial\.iterations=1e309: 1e309 is not a finite number/);
  const neg = await cli(["run", cfg, "--results", results, "--set", "adversarial.batchSize=-3"]);
  assert.equal(neg.code, 2);
  assert.match(
    neg.stderr,
    /--set adversarial\.batchSize=-3: adversarial\.batchSize: -3 is out of range/,
  );
  assert.doesNotMatch(neg.stderr, /tiny\.json/, "the file is not to blame");
  const typo = await cli(["run", cfg, "--results", results, "--set", "adversarial.batchSise=3"]);
  assert.equal(typo.code, 2);
  assert.match(
    typo.stderr,
    /--set adversarial\.batchSise=3: adversarial\.batchSise: unknown key \(did you mean "batchSize"\?\)/,
  );
  assert.equal(await exists(results), false);
});

Deno.test("a config that is a folder is named as such", async () => {
  const { dir, results } = await setup();
  const r = await cli(["run", dir, "--results", results]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /is a folder, not a config file: give a \.json file/);
  assert.doesNotMatch(r.stderr, /os error/);
});

Deno.test("a sweep with an empty grid, or any rejected sweep file, is refused and creates nothing", async () => {
  const { dir, results } = await setup();
  const empty = await writeConfig(dir, "empty", { base: "tiny.json", grid: {} });
  const r = await sweepCli([empty, "--results", results]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /grid: expected at least one axis/);
  const bad = await writeConfig(dir, "bad", { base: "tiny.json", grid: { "nosuch.field": [1] } });
  const r2 = await sweepCli([bad, "--results", results]);
  assert.equal(r2.code, 2, r2.stderr);
  assert.match(r2.stderr, /grid\.nosuch\.field: "nosuch\.field" is not a config field/);
  assert.equal(await exists(results), false, "no results folder for a rejected sweep");
});

Deno.test("an unreachable URL names the config field and what to do", async () => {
  const { dir, files, results } = await setup();
  const sha = "0".repeat(64);
  const cfg = await writeConfig(dir, "web", {
    ...tinyConfig(files),
    data: {
      source: "url",
      retries: 0,
      timeoutSeconds: 2,
      files: Object.fromEntries(Object.keys(files).map((k) => [k, `http://127.0.0.1:9/${k}`])),
      sha256: Object.fromEntries(Object.keys(files).map((k) => [k, sha])),
    },
  });
  const r = await cli(["run", cfg, "--results", results, "--until", "download"]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    /data\.files\.\w+: cannot download http:\/\/127\.0\.0\.1:9\/\w+ after 1 attempts: .*; check the URL and the network/,
  );
});

Deno.test("diff compares run folders from two results folders", async () => {
  const { cfg, dir } = await setup();
  const a = join(dir, "a"), b = join(dir, "b");
  const ra = await cli(["run", cfg, "--results", a, "--until", "preprocess"]);
  const rb = await cli([
    "run",
    cfg,
    "--results",
    b,
    "--until",
    "preprocess",
    "--set",
    "preprocess.trainSubset=100",
  ]);
  assert.equal(ra.code + rb.code, 0, ra.stderr + rb.stderr);
  const runA = ra.stdout.trim().split("\n").at(-1)!, runB = rb.stdout.trim().split("\n").at(-1)!;
  const d = await cli(["diff", runA, runB]);
  assert.equal(d.code, 0, d.stderr);
  assert.match(d.stdout, /preprocess\.trainSubset: null -> 100/);
});

Deno.test("every command answers --help with its own usage, and a bad option with it (exit 2)", async () => {
  // every command there is, so a new one cannot skip this
  for (const command of commandNames(APP)) {
    const head = `usage: deno task ${command}`;
    const help = await cli([command, "--help"]);
    assert.equal(help.code, 0, `${command} --help: ${help.stderr}`);
    assert(help.stdout.startsWith(head), `${command} --help printed: ${help.stdout}`);
    const bad = await cli([command, "--bogus"]);
    assert.equal(bad.code, 2, `${command} --bogus`);
    assert.match(bad.stderr, /^error: Unknown option '--bogus'\n/);
    assert(bad.stderr.includes(head), `${command} --bogus shows its usage: ${bad.stderr}`);
  }
  const keep = await cli(["gc", "--keep-runs", "x", "--results", await Deno.makeTempDir()]);
  assert.equal(keep.code, 2);
  assert.match(keep.stderr, /--keep-runs x: expected an integer >= 0\nusage: deno task gc/);
  const none = await cli(["nosuch"]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /unknown command nosuch\nusage: deno task run\|sweep\|verify/);
});

Deno.test("inputs with limits and messages that fit: seeds past 2^53, /dev/zero as a config, negative option values, each command's own usage", async () => {
  const { dir, cfg, results } = await setup();
  const big = await cli(["run", cfg, "--results", results, "--set", "seed=9007199254740993"]);
  assert.equal(big.code, 2, big.stderr);
  assert.match(
    big.stderr,
    /seed.*beyond the integers a number holds exactly \(at most 9007199254740991\)/,
  );
  assert.equal(await exists(results), false, "nothing created");
  const batch = await cli([
    "run",
    cfg,
    "--results",
    results,
    "--set",
    "adversarial.batchSize=100000000",
  ]);
  assert.equal(batch.code, 2, batch.stderr);
  assert.match(
    batch.stderr,
    /adversarial\.batchSize: 100000000 needs about [\d.]+ TB at once, more than this machine's [\d.]+ GB of memory allows; use a smaller one/,
  );
  assert.equal(await exists(results), false, "nothing created");
  const zero = await cli(["run", "/dev/zero", "--results", results]);
  assert.equal(zero.code, 2, zero.stderr);
  assert.match(zero.stderr, /\/dev\/zero is not a regular file/);
  const huge = join(dir, "huge.json");
  await Deno.writeTextFile(huge, " ".repeat((1 << 20) + 1));
  assert.match(
    (await cli(["run", huge])).stderr,
    /huge\.json is 1048577 bytes; a config is at most 1048576/,
  );
  // negative values reach the option's own check (not "ambiguous")
  const neg = await cli(["sample", "x", "--n", "-5", "--results", results]);
  assert.equal(neg.code, 2, neg.stderr);
  assert.match(neg.stderr, /--n/);
  assert.doesNotMatch(neg.stderr, /ambiguous/);
  // a missing results folder: each command says so with its own usage; runs no longer exits 0
  for (const command of ["verify", "gc", "runs"]) {
    const r = await cli([command, "--results", join(dir, "nowhere")]);
    assert.equal(r.code, 2, `${command}: ${r.stdout}`);
    assert.match(r.stderr, /--results \S+nowhere does not exist/);
    assert.match(r.stderr, new RegExp(`usage: deno task ${command}`), command);
    assert.doesNotMatch(r.stderr, /usage: deno task run </, command);
  }
});

Deno.test("habits from other tools: Hydra's bare key=value, and did-you-mean for options, files and keys", async () => {
  const { dir, cfg, results } = await setup();
  // `run CONFIG key=value` is `--set key=value`: the explained key is that of seed=9
  const bare = await cli(["run", cfg, "seed=9", "--results", results, "--explain"]);
  const set = await cli(["run", cfg, "--set", "seed=9", "--results", results, "--explain"]);
  assert.equal(bare.code, 0, bare.stderr);
  assert.equal(bare.stdout, set.stdout);
  const plain = await cli(["run", cfg, "--results", results, "--explain"]);
  assert.notEqual(bare.stdout, plain.stdout);
  const stray = await cli(["run", cfg, "other.json", "--results", results]);
  assert.equal(stray.code, 2);
  assert.match(
    stray.stderr,
    /expected one config file, got .* other\.json \(overrides are key=value/,
  );
  const typo = await cli(["run", cfg, "--explian"]);
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /^error: Unknown option '--explian' \(did you mean "--explain"\?\)/);
  const file = await cli(["run", join(dir, "tiyn.json"), "--results", results]);
  assert.equal(file.code, 2);
  assert.match(
    file.stderr,
    /config file not found: \S+tiyn\.json \(did you mean \S+\/tiny\.json\?\)/,
  );
  const key = await cli(["run", cfg, "adversarial.learningRate=0.001", "--results", results]);
  assert.equal(key.code, 2);
  assert.match(
    key.stderr,
    /adversarial\.learningRate: unknown key \(did you mean "optimizer\.learningRate" or "optimizer\.police\.learningRate" or "optimizer\.counterfeiter\.learningRate"\?\); allowed here:/,
  );
  assert.ok(!(await exists(results)), "a usage error created the results folder");
});

Deno.test("an ambiguous run name is refused with its candidates (exit 2), as git does", async () => {
  const { cfg, results } = await setup();
  const names = await seedRuns(cfg, results, [1, 2]);
  const d = await cli(["diff", "tiny", names[0], "--results", results]);
  assert.equal(d.code, 2, d.stdout);
  const [a, b] = [...names].sort();
  assert.match(
    d.stderr,
    new RegExp(
      `^error: tiny is ambiguous: it starts 2 runs \\((${a}, ${b}|${b}, ${a})\\); give more of the name`,
    ),
  );
  const ok = await cli(["diff", names[0].slice(0, 9), names[1], "--results", results]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, new RegExp(`^${names[0]} -> ${names[1]}`));
});
