/** Metrics against hand-computed values; plots valid against the Vega-Lite schema, with text. */
import assert from "node:assert/strict";
import { join } from "node:path";
import Ajv from "ajv";
import {
  classesCovered,
  classHistogram,
  classifierScore,
  frechetDistance,
  frechetFromStats,
  klToUniform,
  meanCov,
  sqrtPsd,
} from "../stages/evaluation/metrics.ts";
import { dSpec, histogramSpec, lossSpec, metricsSpec, smooth } from "../stages/reporting/plots.ts";
import { renderSvg, svgToPixels, svgToPng, vegaLiteDir } from "../stages/reporting/render.ts";
import { encodeGrayPng, gridPixels } from "../stages/formats/png.ts";
import { Rng } from "../pipeline/rng.ts";
import type { CheckpointMetrics, HistoryRow } from "../stages/vocabulary.ts";
import { cli, numpyPython, tinyConfig, tinyRun, writeConfig, writeIdxFiles } from "./helpers.ts";

const near = (a: number, b: number, tol: number, what = "") =>
  assert.ok(Math.abs(a - b) <= tol, `${what} ${a} vs ${b}`);

Deno.test("Frechet distance of known Gaussians", () => {
  // 1-D: (m1-m2)^2 + (s1-s2)^2
  near(
    frechetFromStats(
      new Float64Array([1]),
      new Float64Array([4]),
      new Float64Array([3]),
      new Float64Array([9]),
    ),
    4 + 1,
    1e-9,
    "1-D",
  );
  // equal covariances: only the means count
  const c = new Float64Array([2, 0.5, 0.5, 1]);
  near(
    frechetFromStats(new Float64Array([0, 0]), c, new Float64Array([1, 2]), c),
    5,
    1e-9,
    "equal covs",
  );
  // diagonal: sum of (sqrt(a)-sqrt(b))^2
  near(
    frechetFromStats(
      new Float64Array(2),
      new Float64Array([4, 0, 0, 1]),
      new Float64Array(2),
      new Float64Array([1, 0, 0, 9]),
    ),
    1 + 4,
    1e-9,
    "diag",
  );
  // sqrt of a PSD matrix squares back
  const s = sqrtPsd(c, 2);
  const sq = [
    s[0] * s[0] + s[1] * s[2],
    s[0] * s[1] + s[1] * s[3],
    s[2] * s[0] + s[3] * s[2],
    s[2] * s[1] + s[3] * s[3],
  ];
  sq.forEach((v, i) => near(v, c[i], 1e-12, "sqrt"));
  // from samples: two large samples of N(0, I) and N(mu, 4I) in 3-D -> |mu|^2 + 3*(2-1)^2
  const r = new Rng(4), n = 20000, d = 3;
  const a = Float32Array.from({ length: n * d }, () => r.normal());
  const b = Float32Array.from({ length: n * d }, (_, i) => 2 * r.normal() + [1, 0, -1][i % 3]);
  near(frechetDistance(a, n, b, n, d), 2 + 3, 0.15, "sampled");
  const mc = meanCov(Float32Array.from([1, 2, 3, 4]), 2, 2);
  assert.deepEqual([...mc.mean], [2, 3]);
  assert.deepEqual([...mc.cov], [2, 2, 2, 2]);
});

Deno.test("KL of a known histogram, classes covered, and the class histogram", () => {
  near(klToUniform([5, 5, 0, 0, 0, 0, 0, 0, 0, 0]), Math.log(5), 1e-12);
  near(klToUniform([1, 1, 1, 1]), 0, 1e-12);
  near(klToUniform([7, 0, 0, 0, 0, 0, 0, 0, 0, 0]), Math.log(10), 1e-12);
  assert.equal(classesCovered([990, 9, 1, 0], 0.01), 1);
  assert.equal(classesCovered([980, 10, 10, 0], 0.01), 3);
  assert.deepEqual(classHistogram(new Float32Array([0.1, 0.9, 0.8, 0.2, 0.3, 0.7]), 3, 2), [1, 2]);
});

Deno.test("classifier score: 1 for a uniform predictor, k for a confident balanced one", () => {
  const k = 10, n = 50;
  near(classifierScore(new Float32Array(n * k).fill(1 / k), n, k), 1, 1e-6, "uniform");
  const onehot = new Float32Array(n * k);
  for (let i = 0; i < n; i++) onehot[i * k + (i % k)] = 1;
  near(classifierScore(onehot, n, k), 10, 1e-6, "one-hot balanced");
  const collapsed = new Float32Array(n * k);
  for (let i = 0; i < n; i++) collapsed[i * k + 3] = 1;
  near(classifierScore(collapsed, n, k), 1, 1e-6, "one-hot collapsed");
});

function fakeHistory(n: number): HistoryRow[] {
  const r = new Rng(1);
  return Array.from({ length: n }, (_, i) => ({
    iteration: i + 1,
    dRealBefore: 0.9,
    dFakeBefore: 0.3,
    dRealAfterPolice: 0.95 - 0.1 * r.uniform(),
    dFakeAfterPolice: 0.1 * r.uniform(),
    dFakeAfterCounterfeiter: 0.5 + 0.2 * r.normal(),
    policeLoss: 0.3 + 0.1 * r.uniform(),
    counterfeiterLoss: 2 + r.uniform(),
    seconds: 0.4,
  }));
}

function fakeMetrics(): { points: CheckpointMetrics[]; reference: CheckpointMetrics } {
  const m = (it: number, fd: number): CheckpointMetrics => ({
    iteration: it,
    dReal: 0.9,
    dFake: 0.2,
    outOfRangeFraction: 0.4,
    frechet: fd,
    classHistogram: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    classesCovered: 9,
    klToUniform: 0.1,
    classifierScore: 6,
  });
  return { points: [m(10, 50), m(20, 30)], reference: m(0, 2) };
}

function specs() {
  const { points, reference } = fakeMetrics();
  return {
    d: dSpec(fakeHistory(60)),
    loss: lossSpec(fakeHistory(60)),
    metrics: metricsSpec(points, reference, 20),
    hist: histogramSpec([0, 0, 5, 5, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]),
  };
}

Deno.test("every plot spec is valid against the Vega-Lite schema shipped in vega-lite", async () => {
  const schema = JSON.parse(
    await Deno.readTextFile(join(vegaLiteDir(), "build", "vega-lite-schema.json")),
  );
  // formats (uri, color-hex) are not what this checks: without this ajv logs one line each
  // deno-lint-ignore no-explicit-any
  const ajv = new (Ajv as any)({ strict: false, allErrors: true, validateFormats: false });
  const validate = ajv.compile(schema);
  for (const [name, spec] of Object.entries(specs())) {
    const ok = validate(spec);
    assert.ok(ok, `${name}: ${JSON.stringify(validate.errors?.slice(0, 3))}`);
  }
  // and the validator does reject a broken spec
  assert.equal(validate({ mark: "lines", data: { values: [] } }), false);
});

/** Pixels darker than light grey (RGBA rows). */
function inkOf(rgba: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < rgba.length; i += 4) if (rgba[i] + rgba[i + 1] + rgba[i + 2] < 3 * 160) n++;
  return n;
}

Deno.test("every plot's PNG has visible text: rendering without the text changes the image", async () => {
  for (const [name, spec] of Object.entries(specs())) {
    const svg = await renderSvg(spec);
    assert.match(svg, /<text/, `${name}: no text elements in the SVG`);
    const withText = inkOf(svgToPixels(svg).rgba);
    const noText = inkOf(svgToPixels(svg.replace(/<text[^>]*>[^<]*<\/text>/g, "")).rgba);
    assert.ok(
      withText > noText + 500,
      `${name}: text adds no ink (${withText} vs ${noText}); fonts missing?`,
    );
    const png = svgToPng(svg);
    assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]);
  }
});

Deno.test("sample grids and the PNG encoder", async () => {
  const imgs = new Float32Array(25 * 16).map((_, i) => (i % 16) / 15);
  const g = gridPixels(imgs, 4, 25, { gap: 1, scale: 1 });
  assert.deepEqual([g.width, g.height], [26, 26]);
  assert.equal(g.pixels[1 * 26 + 1], 0); // first pixel of the first image
  assert.equal(g.pixels[1 * 26 + 4], Math.round((255 * 3) / 15));
  assert.equal(g.pixels[0], 40); // the gap
  const png = encodeGrayPng(g.width, g.height, g.pixels);
  const py = `import zlib,struct,sys
d=open(sys.argv[1],'rb').read(); assert d[:8]==b'\\x89PNG\\r\\n\\x1a\\n'
w,h=struct.unpack('>II',d[16:24]); i=d.index(b'IDAT'); n=struct.unpack('>I',d[i-4:i])[0]
raw=zlib.decompress(d[i+4:i+4+n]); print(w,h,len(raw),raw[27+1+4])`;
  const f = await Deno.makeTempFile({ suffix: ".png" });
  await Deno.writeFile(f, png);
  const out = await new Deno.Command(await numpyPython(), { args: ["-c", py, f], stdout: "piped" })
    .output();
  assert.equal(new TextDecoder().decode(out.stdout).trim(), `26 26 ${27 * 26} 51`);
});

Deno.test("smoothing is a trailing moving average", () => {
  assert.deepEqual(smooth([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5]);
});

/** Runs the whole pipeline on tiny 28x28 data with a small evaluator; `extra` joins the config. */
async function tinyPipeline(extra: Record<string, unknown> = {}, args: string[] = []) {
  const dir = await Deno.makeTempDir();
  const files = await writeIdxFiles(dir, { train: 200, test: 60, side: 28 });
  const cfg = await writeConfig(
    dir,
    "tiny",
    tinyConfig(files, {
      evaluator: { kind: "mlp", hidden: [16], epochs: 1, batchSize: 32 },
      evaluate: { samples: 40 },
      ...extra,
    }),
  );
  const r = await cli(["run", cfg, "--results", join(dir, "results"), ...args]);
  assert.equal(r.code, 0, r.stderr);
  return { dir, r };
}

Deno.test("the whole pipeline on tiny data produces the report, metrics and grids", async () => {
  const { dir, r } = await tinyPipeline();
  const report = r.stdout.trim().split("\n").at(-1)!;
  assert.ok(report.endsWith("report.html"));
  const html = await Deno.readTextFile(report);
  for (
    const needle of [
      "<svg",
      "What the police says",
      "data:image/png;base64,",
      "Frechet distance",
      "Run record",
      "train_police",
    ]
  ) {
    assert.ok(html.includes(needle), `report lacks ${needle}`);
  }
  assert.ok(!html.includes("<!--RUN-RECORD-->"));
  assert.ok(
    !/(src|href)="https?:/.test(html),
    "the report must not load anything from the network",
  );
  const evalDir = join(dir, "results", "cache", "evaluate");
  const key = [...Deno.readDirSync(evalDir)].find((e) => !e.name.startsWith("."))!.name;
  const metrics = JSON.parse(await Deno.readTextFile(join(evalDir, key, "metrics.json")));
  assert.deepEqual(metrics.checkpoints.map((c: { iteration: number | string }) => c.iteration), [
    2,
    4,
    "final",
  ]);
  for (
    const k of [
      "frechet",
      "classifierScore",
      "classesCovered",
      "klToUniform",
      "dReal",
      "dFake",
      "outOfRangeFraction",
    ]
  ) {
    assert.equal(typeof metrics.final[k], "number", k);
  }
  assert.ok(
    metrics.reference.frechet < metrics.final.frechet,
    "real images should score closer to real than fakes",
  );
  const grids = [...Deno.readDirSync(join(evalDir, key, "grids"))].map((e) => e.name).sort();
  assert.deepEqual(grids, ["final.png", "iter_000002.png", "iter_000004.png", "real.png"]);
  // every .npy of images is on [0,1]: the scored (clipped) samples
  const py =
    `import numpy as np,sys; a=np.load(sys.argv[1]); print(a.dtype, a.shape, a.min() >= 0, a.max() <= 1)`;
  const out = await new Deno.Command(await numpyPython(), {
    args: ["-c", py, join(evalDir, key, "samples.npy")],
    stdout: "piped",
  }).output();
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "float32 (40, 784) True True");
});

Deno.test("a [-1,1] recipe run is scored on [0,1], and the report says how far it is from the goal", async () => {
  const { dir, r } = await tinyPipeline({
    model: {
      noiseDim: 3,
      pixelScale: "symmetric",
      counterfeiter: { hidden: [8], outputActivation: "tanh", activation: "leakyRelu" },
      police: { hidden: [8], dropout: 0.3, activation: "leakyRelu" },
    },
    // checkpoints 2, 4, 6: tailFrechet averages 4 and 6
    adversarial: { iterations: 6, batchSize: 16, fitBatchSize: 8, checkpointEvery: 2, ema: 0.9 },
  }, ["--set", "backend=fast-cpu"]);
  assert.match(r.stderr, /goal: \d of 5 marks met/);
  const html = await Deno.readTextFile(r.stdout.trim().split("\n").at(-1)!);
  assert.ok(html.includes("Distance to the goal"));
  assert.match(html, /by the MLP evaluator \(test accuracy [\d.]+%, evaluator seed 0\)/);
  assert.match(html, /the moving average of its weights \(decay 0.9\)/);
  assert.match(html, /-m seed=1,2,3/);
  assert.match(html, /Goal: \d of 5 marks met; missing [^<]*Frechet distance/);
  const evalDir = join(dir, "results", "cache", "evaluate");
  const key = [...Deno.readDirSync(evalDir)].find((e) => !e.name.startsWith("."))!.name;
  const metrics = JSON.parse(await Deno.readTextFile(join(evalDir, key, "metrics.json")));
  // tanh covers [-1,1]; mapped to [0,1] nothing lies outside
  for (const c of metrics.checkpoints) assert.equal(c.outOfRangeFraction, 0);
  const py =
    `import numpy as np,sys; a=np.load(sys.argv[1]); print(a.min() >= 0, a.max() <= 1, a.shape)`;
  const out = await new Deno.Command(await numpyPython(), {
    args: ["-c", py, join(evalDir, key, "samples.npy")],
    stdout: "piped",
  }).output();
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "True True (40, 784)");
  const meta = JSON.parse(await Deno.readTextFile(join(evalDir, key, "meta.json")));
  assert.equal(typeof meta.summary.goalMiss, "number");
  // tailFrechet: the mean distance over the numbered checkpoints past the run's half
  const numbered = metrics.checkpoints.filter((c: { iteration: unknown }) =>
    typeof c.iteration === "number"
  );
  const half = numbered.at(-1).iteration / 2;
  const tail = numbered.filter((c: { iteration: number }) => c.iteration > half);
  assert.ok(tail.length >= 2 && tail.length < numbered.length, `${tail.length} checkpoints`);
  const mean = tail.reduce((s: number, c: { frechet: number }) => s + c.frechet, 0) / tail.length;
  assert.ok(Math.abs(meta.summary.tailFrechet - mean) < 1e-9, `${meta.summary.tailFrechet}`);
  assert.ok(meta.summary.goalMarksMet >= 0 && meta.summary.goalMarksMet <= 5);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("the report's subtitle states the run's own settings, whatever the config's description says", async () => {
  const { cfg, results } = await tinyRun({ description: "a tiny run of 4 iterations" });
  const r = await cli(["run", cfg, "--results", results, "adversarial.iterations=6"]);
  assert.equal(r.code, 0, r.stderr);
  const html = await Deno.readTextFile(r.stdout.trim().split("\n").at(-1)!);
  const subs = [...html.matchAll(/<p class="sub">([^<]*)<\/p>/g)].map((m) => m[1]);
  assert.match(subs[0], /^seed 5 &middot; 6 iterations, batch 16/);
  assert.equal(subs[1], "The config's description: a tiny run of 4 iterations");
});
