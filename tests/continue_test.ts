/** A longer run continues a cached shorter one, with the bits of a run made in one go. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cli, tinyConfig, writeConfig, writeIdxFiles } from "./helpers.ts";

async function setup() {
  const dir = await Deno.makeTempDir();
  const files = await writeIdxFiles(dir);
  const cfg = await writeConfig(
    dir,
    "tiny",
    tinyConfig(files, {
      adversarial: { iterations: 30, batchSize: 16, fitBatchSize: 8, checkpointEvery: 10 },
    }),
  );
  return { dir, cfg };
}

async function entry(results: string, key: string) {
  const dir = join(results, "cache", "adversarial", key);
  const strip = (h: Record<string, number>[]) => h.map((r) => ({ ...r, seconds: 0 }));
  const ckpts: Record<string, string> = {};
  for await (const e of Deno.readDir(join(dir, "checkpoints"))) {
    const w = await Deno.readFile(join(dir, "checkpoints", e.name, "police", "weights.bin"));
    ckpts[e.name] = Array.from(w.subarray(0, 64)).join(",") + `:${w.length}`;
  }
  return {
    history: strip(JSON.parse(await Deno.readTextFile(join(dir, "history.json")))),
    police: await Deno.readFile(join(dir, "police", "weights.bin")),
    adam: await Deno.readFile(join(dir, "counterfeiter", "adam_m.npy")),
    rng: await Deno.readTextFile(join(dir, "rng.json")),
    ckpts,
  };
}

const keyOf = (stdout: string) =>
  JSON.parse(Deno.readTextFileSync(join(stdout.trim().split("\n").at(-1)!, "run.json")))
    .stages.find((s: { stage: string }) => s.stage === "adversarial").key as string;

/** Runs the pipeline up to the adversarial stage with `iterations`, into `results`. */
const toAdversarial = (cfg: string, results: string, iterations: number, ...extra: string[]) =>
  cli([
    "run",
    cfg,
    "--results",
    results,
    "--until",
    "adversarial",
    "--set",
    `adversarial.iterations=${iterations}`,
    ...extra,
  ]);

for (const short of [30, 35]) {
  Deno.test(`extending ${short} -> 90 iterations gives the bits of 90 in one go; explain says so`, async () => {
    const { dir, cfg } = await setup();
    const a = join(dir, "a"), b = join(dir, "b");
    const first = await toAdversarial(cfg, a, short);
    assert.equal(first.code, 0, first.stderr);
    const ex = await toAdversarial(cfg, a, 90, "--explain");
    assert.match(
      ex.stdout,
      new RegExp(
        `adversarial\\s+\\w+\\s+runs because extends adversarial ${short} -> 90 from cache entry \\w{12}`,
      ),
    );
    const longer = await toAdversarial(cfg, a, 90);
    assert.equal(longer.code, 0, longer.stderr);
    assert.match(longer.stderr, new RegExp(`continuing the cached ${short}-iteration run`));
    assert.match(longer.stderr, new RegExp(`resuming from the checkpoint at iteration ${short}`));
    const oneGo = await toAdversarial(cfg, b, 90);
    assert.equal(oneGo.code, 0, oneGo.stderr);
    const key = keyOf(oneGo.stdout);
    assert.equal(keyOf(longer.stdout), key);
    const x = await entry(a, key), y = await entry(b, key);
    assert.equal(x.history.length, 90);
    assert.deepEqual(x.history, y.history);
    assert.deepEqual(x.police, y.police);
    assert.deepEqual(x.adam, y.adam);
    assert.equal(x.rng, y.rng);
    assert.deepEqual(x.ckpts, y.ckpts);
    assert.deepEqual(Object.keys(x.ckpts).sort(), [
      "iter_000010",
      "iter_000020",
      "iter_000030",
      "iter_000040",
      "iter_000050",
      "iter_000060",
      "iter_000070",
      "iter_000080",
      "iter_000090",
    ]);
    // and the shorter entry is untouched, still valid
    const v = await cli(["verify", "--results", a, "--quiet"]);
    assert.equal(v.code, 0, v.stdout);
  });
}

Deno.test("a weight average: training bits unchanged, the entry samples with it, extending repeats it", async () => {
  const { dir, cfg } = await setup();
  const [plain, a, b] = ["plain", "a", "b"].map((n) => join(dir, n));
  const ema = ["--set", "adversarial.ema=0.9"];
  const none = await toAdversarial(cfg, plain, 60);
  assert.equal(none.code, 0, none.stderr);
  const first = await toAdversarial(cfg, a, 35, ...ema);
  assert.equal(first.code, 0, first.stderr);
  const longer = await toAdversarial(cfg, a, 60, ...ema);
  assert.equal(longer.code, 0, longer.stderr);
  assert.match(longer.stderr, /continuing the cached 35-iteration run/);
  const oneGo = await toAdversarial(cfg, b, 60, ...ema);
  assert.equal(oneGo.code, 0, oneGo.stderr);
  const key = keyOf(oneGo.stdout);
  assert.equal(keyOf(longer.stdout), key);
  const read = (results: string, k: string, path: string) =>
    Deno.readFile(join(results, "cache", "adversarial", k, path));
  const noneKey = keyOf(none.stdout);
  // the average reads the weights and changes no training number
  const history = async (results: string, k: string) =>
    new TextDecoder().decode(await read(results, k, "history.json"));
  assert.equal(await history(b, key), await history(plain, noneKey));
  assert.deepEqual(
    await read(b, key, "counterfeiter_trained/weights.bin"),
    await read(plain, noneKey, "counterfeiter/weights.bin"),
  );
  // what samples is the average, at the end and at every checkpoint
  const averaged = await read(b, key, "counterfeiter/weights.bin");
  assert.notDeepEqual(averaged, await read(plain, noneKey, "counterfeiter/weights.bin"));
  assert.notDeepEqual(
    await read(b, key, "checkpoints/iter_000050/counterfeiter/weights.bin"),
    await read(plain, noneKey, "checkpoints/iter_000050/counterfeiter/weights.bin"),
  );
  // an extended run's average is the one-go run's, bit for bit
  assert.deepEqual(await read(a, key, "counterfeiter/weights.bin"), averaged);
  assert.deepEqual(
    await read(a, key, "checkpoints/iter_000050/counterfeiter/weights.bin"),
    await read(b, key, "checkpoints/iter_000050/counterfeiter/weights.bin"),
  );
  assert.deepEqual(
    await read(a, key, "counterfeiter_trained/adam_m.npy"),
    await read(b, key, "counterfeiter_trained/adam_m.npy"),
  );
});

Deno.test("a damaged shorter entry is not continued: set aside in one line, the longer run starts over to the same bits", async () => {
  const { dir, cfg } = await setup();
  const a = join(dir, "a"), b = join(dir, "b");
  const first = await toAdversarial(cfg, a, 30);
  assert.equal(first.code, 0, first.stderr);
  const shortKey = keyOf(first.stdout);
  const damaged = join(a, "cache", "adversarial", shortKey, "counterfeiter", "adam_m.npy");
  const bytes = await Deno.readFile(damaged);
  bytes[bytes.length - 3] ^= 4;
  await Deno.writeFile(damaged, bytes);
  const longer = await toAdversarial(cfg, a, 60);
  assert.equal(longer.code, 0, longer.stderr);
  assert.match(
    longer.stderr,
    new RegExp(
      `\\[adversarial\\] the cached entry ${
        shortKey.slice(0, 12)
      } it would continue is damaged: counterfeiter/adam_m.npy does not match its sealed SHA-256; moved to \\S+; running from the beginning`,
    ),
  );
  assert.doesNotMatch(longer.stderr, /continuing the cached/);
  const oneGo = await toAdversarial(cfg, b, 60);
  assert.equal(oneGo.code, 0, oneGo.stderr);
  const key = keyOf(oneGo.stdout);
  const x = await entry(a, key), y = await entry(b, key);
  assert.deepEqual(x.history, y.history);
  assert.deepEqual(x.police, y.police);
  assert.deepEqual(x.adam, y.adam);
  // the damaged entry is no longer in the cache: verify passes
  const v = await cli(["verify", "--results", a, "--quiet"]);
  assert.equal(v.code, 0, v.stdout);
});
