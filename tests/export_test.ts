/**
 * `deno task export`: a run's networks as ONNX (run back with ONNX Runtime against tfjs), as
 * tfjs layers models, and as a web page that draws digits in headless chromium.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import "@tensorflow/tfjs-backend-cpu";
import { layersPredict, runOnnx } from "../stages/commands/export.ts";
import { CHECK_ROWS, checkNoise } from "../stages/commands/web_page.ts";
import { dumpDom, findChromium } from "./browser.ts";
import { cli, ROOT, tinyRun } from "./helpers.ts";

const maxAbsDiff = (a: Float32Array, b: Float32Array) =>
  a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

/** A tiny trained run and its results folder. */
async function trained() {
  const t = await tinyRun();
  const r = await cli(["run", t.cfg, "--results", t.results]);
  assert.equal(r.code, 0, r.stderr);
  // the run folder links to what it holds: no one needs the cache's layout
  const runDir = join(r.stdout.trim().split("\n").at(-1)!, "..");
  const model = join(runDir, "artifacts", "adversarial", "counterfeiter", "model.json");
  assert.equal(JSON.parse(await Deno.readTextFile(model)).format, "layers-model");
  return t;
}

async function exportRun(results: string, out: string, ...extra: string[]) {
  const r = await cli(["export", "tiny", "--results", results, "--out", out, ...extra]);
  assert.equal(r.code, 0, r.stderr);
  return r;
}

Deno.test("export onnx: ONNX Runtime gives the tfjs models' outputs (max |diff| <= 1e-5), on [0,1] by default", async () => {
  const { dir, results } = await trained();
  const onnxDir = join(dir, "onnx"), rawDir = join(dir, "raw"), tfjsDir = join(dir, "tfjs");
  const r = await exportRun(results, onnxDir);
  assert.equal(r.stdout.trim(), onnxDir);
  assert.match(r.stderr, /counterfeiter: ONNX Runtime matches tfjs within/);
  await exportRun(results, rawDir, "--raw");
  await exportRun(results, tfjsDir, "--format", "tfjs");
  const { noise, image } = JSON.parse(await Deno.readTextFile(join(onnxDir, "export.json")));
  let outside = 0;
  for (const [net, width] of [["counterfeiter", noise], ["police", image]] as const) {
    const input = checkNoise(50, width).map((v) => 3 * v);
    const fromTfjs = await layersPredict(join(tfjsDir, net), input, width);
    // --raw: the nets as trained (this run's pixel scale is [0,1])
    const raw = await runOnnx(join(rawDir, `${net}.onnx`), input, width);
    assert.equal(raw.length, fromTfjs.length);
    const diff = maxAbsDiff(raw, fromTfjs);
    assert(diff <= 1e-5, `${net}: ONNX Runtime and tfjs differ by ${diff}`);
    // the default: the counterfeiter's images clipped to [0,1]; the police unchanged
    const unit = await runOnnx(join(onnxDir, `${net}.onnx`), input, width);
    const want = net === "counterfeiter"
      ? fromTfjs.map((v) => Math.min(1, Math.max(0, v)))
      : fromTfjs;
    assert(maxAbsDiff(unit, want) <= 1e-5, `${net}: the [0,1] graph differs`);
    if (net === "counterfeiter") outside = fromTfjs.filter((v) => v < 0 || v > 1).length;
  }
  assert.ok(outside > 0, "the check needs raw outputs outside [0,1] to show the clip");
  assert.match(await Deno.readTextFile(join(onnxDir, "README.md")), /clipped to it in the graph/);
  assert.match(
    await Deno.readTextFile(join(rawDir, "README.md")),
    /not clipped \(exported with --raw\)/,
  );
  const record = JSON.parse(await Deno.readTextFile(join(onnxDir, "export.json")));
  assert.equal(record.format, "onnx");
  assert.match(await Deno.readTextFile(join(onnxDir, "README.md")), /onnxruntime/);
  assert.match(await Deno.readTextFile(join(tfjsDir, "README.md")), /loadLayersModel/);
});

Deno.test("the tfjs export's README snippet runs as written with plain @tensorflow/tfjs, offline", async () => {
  const { dir, results } = await trained();
  const tfjsDir = join(dir, "tfjs");
  await exportRun(results, tfjsDir, "--format", "tfjs");
  const readme = await Deno.readTextFile(join(tfjsDir, "README.md"));
  const code = readme.match(/```js\n([\s\S]*?)```/)![1];
  assert.match(code, /from "@tensorflow\/tfjs"/);
  const file = join(tfjsDir, "snippet.mjs");
  await Deno.writeTextFile(file, code);
  // the project's deno.json maps @tensorflow/tfjs; the snippet reads the files beside it
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--config", join(ROOT, "deno.json"), "--allow-read", "--allow-env", file],
    cwd: tfjsDir,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const [shape, min, max] = text.trim().split("\n").at(-1)!.split(" ");
  assert.equal(shape, "16x36");
  assert.ok(Number(min) >= 0 && Number(max) <= 1 && Number(max) > Number(min), text);
});

Deno.test("export refuses what it cannot do, leaving nothing behind (exit 2)", async () => {
  const { dir, results } = await trained();
  const out = join(dir, "out-x");
  const cases: [string[], RegExp][] = [
    [["--format", "pt"], /--format pt: expected onnx, tfjs or web\nusage: deno task export/],
    [["--checkpoint", "3"], /--checkpoint 3: the run has no checkpoint there; it has 2, 4/],
    [["--checkpoint", "x"], /--checkpoint x: expected an integer >= 1/],
  ];
  for (const [extra, want] of cases) {
    const r = await cli(["export", "tiny", "--results", results, "--out", out, ...extra]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, want);
  }
  const noOut = await cli(["export", "tiny", "--results", results]);
  assert.equal(noOut.code, 2);
  assert.match(noOut.stderr, /--out DIR is required/);
  assert.deepEqual(
    [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.includes("out-x")),
    [],
  );
  await exportRun(results, out, "--checkpoint", "2");
  const again = await cli(["export", "tiny", "--results", results, "--out", out]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /--out \S+: already exists; name a new folder/);
});

const chromium = findChromium();

Deno.test({
  name: "export web: the page draws the counterfeiter's digits in headless chromium, offline",
  ignore: !chromium,
  fn: async () => {
    const { dir, results } = await trained();
    const web = join(dir, "web"), tfjsDir = join(dir, "tfjs");
    const r = await exportRun(results, web, "--format", "web");
    assert.equal(r.stdout.trim(), join(web, "index.html"));
    await exportRun(results, tfjsDir, "--format", "tfjs");
    const dom = await dumpDom(chromium!, `file://${web}/index.html#check`);
    const check = dom.match(/<output id="check">([^<]+)<\/output>/);
    assert(check, `the page drew nothing; its DOM:\n${dom.slice(0, 3000)}`);
    const { sum, first } = JSON.parse(check[1]);
    const { noise, image } = JSON.parse(await Deno.readTextFile(join(web, "export.json")));
    const want = await layersPredict(
      join(tfjsDir, "counterfeiter"),
      checkNoise(CHECK_ROWS, noise),
      noise,
    );
    assert.equal(want.length, CHECK_ROWS * image);
    const wantSum = want.reduce((s, v) => s + v, 0);
    assert(Math.abs(sum - wantSum) <= 1e-4 * (1 + Math.abs(wantSum)), `${sum} vs ${wantSum}`);
    first.forEach((v: number, i: number) => assert(Math.abs(v - want[i]) <= 1e-5, `pixel ${i}`));
  },
});
