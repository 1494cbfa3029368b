/** `deno task sample`: new digits from a run, by its name or folder, as a PNG grid or an .npy. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cli, numpyPython, tinyRun } from "./helpers.ts";

Deno.test("sample draws digits from a run's final or checkpoint counterfeiter, repeatably", async () => {
  const { dir, cfg, results } = await tinyRun();
  const run = await cli(["run", cfg, "--results", results]);
  assert.equal(run.code, 0, run.stderr);
  const runDir = join(run.stdout.trim().split("\n").at(-1)!, "..");
  const a = join(dir, "a.npy"), b = join(dir, "b.npy"), c = join(dir, "c.npy");
  for (const [out, seed, extra] of [[a, "1", []], [b, "1", []], [c, "2", ["--checkpoint", "2"]]]) {
    const r = await cli([
      "sample",
      "tiny",
      "--results",
      results,
      "--n",
      "5",
      "--seed",
      seed as string,
      "--out",
      out as string,
      ...(extra as string[]),
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), out);
  }
  assert.deepEqual(
    await Deno.readFile(a),
    await Deno.readFile(b),
    "the same seed, the same digits",
  );
  assert.notDeepEqual(await Deno.readFile(a), await Deno.readFile(c));
  const py = await numpyPython();
  const check = await new Deno.Command(py, {
    args: [
      "-c",
      `import numpy as n; x = n.load("${a}"); print(x.shape, x.dtype, x.min() >= 0, x.max() <= 1)`,
    ],
    stdout: "piped",
  }).output();
  assert.equal(new TextDecoder().decode(check.stdout).trim(), "(5, 36) float32 True True");
  // by the run's folder, into the folder, as a PNG grid
  const png = await cli(["sample", runDir, "--n", "64"]);
  assert.equal(png.code, 0, png.stderr);
  const bytes = await Deno.readFile(png.stdout.trim());
  assert.deepEqual([...bytes.subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
  // 64 digits lay out 8 by 8 (as torchvision's make_grid): 6-pixel digits, 2-pixel gaps, x2
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  const side = (8 * (6 + 2) + 2) * 2;
  assert.deepEqual([view.getUint32(16), view.getUint32(20)], [side, side]);
});

Deno.test("sample refuses what it cannot do, naming the fix (exit 2)", async () => {
  const { cfg, results } = await tinyRun();
  assert.equal((await cli(["run", cfg, "--results", results])).code, 0);
  const ck = await cli(["sample", "tiny", "--results", results, "--checkpoint", "3"]);
  assert.equal(ck.code, 2);
  assert.match(ck.stderr, /--checkpoint 3: the run has no checkpoint there; it has 2, 4/);
  const none = await cli(["sample", "nosuch", "--results", results]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /nosuch: no such run in \S+; runs: tiny-\w+\nusage: deno task sample/);
  const jpg = await cli(["sample", "tiny", "--results", results, "--out", "x.jpg"]);
  assert.equal(jpg.code, 2);
  assert.match(jpg.stderr, /--out x\.jpg: expected a \.png or \.npy file/);
  // more digits than memory holds: refused before any is drawn
  const huge = await cli(["sample", "tiny", "--results", results, "--n", "1e12"]);
  assert.equal(huge.code, 2, huge.stderr);
  assert.match(
    huge.stderr,
    /--n: 1000000000000 needs about [\d.]+ TB at once, more than this machine's [\d.]+ GB of memory allows/,
  );
});

Deno.test("sample and export refuse a damaged model: one line naming it and --verify, exit 1, nothing written", async () => {
  const { dir, cfg, results } = await tinyRun();
  const run = await cli(["run", cfg, "--results", results]);
  assert.equal(run.code, 0, run.stderr);
  const record = JSON.parse(
    await Deno.readTextFile(join(run.stdout.trim().split("\n").at(-1)!, "..", "run.json")),
  );
  const key: string = record.stages.find((s: { stage: string }) => s.stage === "adversarial").key;
  const weights = join(results, "cache", "adversarial", key, "counterfeiter", "weights.bin");
  const bytes = await Deno.readFile(weights);
  bytes[11] ^= 2;
  await Deno.writeFile(weights, bytes);
  const out = join(dir, "x.png"), exported = join(dir, "exported");
  // what a killed export left beside its --out (its pid is gone): the next export removes it
  const leftover = join(dir, ".old-export-abc123");
  await Deno.mkdir(leftover);
  await Deno.writeTextFile(join(leftover, ".lock"), "");
  for (const args of [["sample", "tiny", "--out", out], ["export", "tiny", "--out", exported]]) {
    const r = await cli([...args, "--results", results]);
    assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0],
      new RegExp(
        `^error: \\S+: its adversarial cache entry ${
          key.slice(0, 12)
        } is damaged \\(counterfeiter/weights.bin does not match its seal\\); rebuild it with: deno task run <its config> --verify$`,
      ),
    );
  }
  assert.equal(await Deno.stat(out).catch(() => null), null);
  assert.equal(await Deno.stat(exported).catch(() => null), null);
  assert.equal(
    await Deno.stat(leftover).catch(() => null),
    null,
    "a killed export's folder stayed",
  );
  // a checkpoint's undamaged nets still sample
  const ok = await cli(["sample", "tiny", "--results", results, "--checkpoint", "2", "--out", out]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.doesNotMatch(ok.stderr, /overwrote/);
  // a second sample to the same file says it overwrote it
  const again = await cli([
    "sample",
    "tiny",
    "--results",
    results,
    "--checkpoint",
    "2",
    "--out",
    out,
  ]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, new RegExp(`overwrote ${out}`));
  assert.equal(again.stdout.trim(), out);
});
