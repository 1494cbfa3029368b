/**
 * `deno task export RUN --out DIR [--format onnx|tfjs|web] [--checkpoint ITER]`: a run's
 * trained networks in a form other tools load, without the cache's layout.
 * - onnx: `counterfeiter.onnx` and `police.onnx` (see formats/onnx.ts), checked here by
 *   running them with ONNX Runtime against the tfjs outputs before the command succeeds;
 * - tfjs: the layers-format models (`counterfeiter/model.json` + `weights.bin`, `police/`);
 * - web: `index.html` that draws digits in a browser offline (web_page.ts).
 * Each folder has a README.md saying how to load what it holds, and `export.json` (the run,
 * the cache entry, the checkpoint). The folder is written beside DIR and renamed into place,
 * so a failed export leaves nothing a later command mistakes for one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatOf } from "./export.ts";
 * assert.equal(formatOf("web"), "web");
 * assert.throws(() => formatOf("pt"), /--format pt: expected onnx, tfjs or web/);
 * ```
 */
import { createRequire } from "node:module";
import { basename, dirname, join, resolve } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import type { App } from "../../pipeline/app.ts";
import { parseCommand } from "../../pipeline/args.ts";
import { UsageError } from "../../pipeline/errors.ts";
import { findRun } from "../../pipeline/runs_cli.ts";
import { lockHeld } from "../../pipeline/live.ts";
import { fileLoadHandler, loadNet } from "../formats/model_io.ts";
import { encodeBase64 } from "../reporting/base64.ts";
import { netToOnnx, ONNX_IO } from "../formats/onnx.ts";
import { clip01, disposeNet, fromUnitScale, type Net, toUnitScale } from "../training/nets.ts";
import { checkNoise, pageHtml, TFJS_BUNDLES } from "./web_page.ts";
import { intOption, netDirOfRun, selectRunBackend } from "./run_nets.ts";

const USAGE =
  `usage: deno task export RUN --out DIR [--format onnx|tfjs|web] [--checkpoint ITER] [--raw]
  a run's trained networks for use elsewhere (RUN: a run folder, or a run name or prefix)
  --out DIR          the folder to write (must not exist yet)
  --format F         onnx (default): counterfeiter.onnx and police.onnx, checked with ONNX Runtime
                     tfjs: the TensorFlow.js layers models, for Node or a browser
                     web: index.html drawing new digits in a browser, offline
  --checkpoint ITER  the networks at a checkpoint of the loop (default: the final ones)
  --raw              onnx: the nets' own pixel scale, unclipped (default: images in and out
                     on [0,1], white on black, the counterfeiter's clipped, as every file here)
  --results DIR      where run names are looked up (default: results)`;

const FORMATS = ["onnx", "tfjs", "web"] as const;
type Format = typeof FORMATS[number];

/** `--format`. */
export function formatOf(text: string): Format {
  if ((FORMATS as readonly string[]).includes(text)) return text as Format;
  throw new UsageError(`--format ${text}: expected onnx, tfjs or web`, USAGE);
}

/** The largest difference ONNX Runtime is allowed from tfjs (float32 sums in another order). */
export const ONNX_TOLERANCE = 1e-4;

/** Runs an exported ONNX model on `input` with ONNX Runtime. */
export async function runOnnx(file: string, input: Float32Array, width: number) {
  const ort = await import("onnxruntime-node");
  const session = await ort.InferenceSession.create(file);
  try {
    const rows = input.length / width;
    const { input: i, output: o } = ONNX_IO[basename(file, ".onnx") as "police"];
    const out = await session.run({ [i]: new ort.Tensor("float32", input, [rows, width]) });
    return out[o].data as Float32Array;
  } finally {
    await session.release();
  }
}

const maxAbsDiff = (a: Float32Array, b: Float32Array) =>
  a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

/** Writes both nets as ONNX and checks each against tfjs; returns the README's lines. */
async function writeOnnx(
  dir: string,
  nets: [Net, string][],
  facts: Record<string, string>,
  raw: boolean,
) {
  const lines: string[] = [];
  for (const [net, from] of nets) {
    const file = join(dir, `${net.kind}.onnx`);
    await Deno.writeFile(file, netToOnnx(net, facts, { raw }));
    const width = net.layers[0].W.shape[0] as number;
    const input = checkNoise(64, width);
    // the graph's pixel convention, applied to tfjs's side of the check
    const unitIn = !raw && net.kind === "police";
    const out = await layersPredict(
      from,
      unitIn ? fromUnitScale(input, net.pixelScale) : input,
      width,
    );
    const want = !raw && net.kind === "counterfeiter"
      ? clip01(toUnitScale(out, net.pixelScale)).clipped
      : out;
    const diff = maxAbsDiff(await runOnnx(file, input, width), want);
    if (!(diff <= ONNX_TOLERANCE)) {
      throw new Error(
        `${file}: ONNX Runtime's outputs differ from tfjs's by ${diff} (more than ${ONNX_TOLERANCE}); please report this`,
      );
    }
    lines.push(`${net.kind}: ONNX Runtime matches tfjs within ${diff.toExponential(1)}`);
  }
  return lines;
}

/** What the tfjs layers model in `dir` says to `input` (inference mode). */
export async function layersPredict(dir: string, input: Float32Array, width: number) {
  const model = await tfl.loadLayersModel(fileLoadHandler(dir));
  try {
    const out = tf.tidy(() => model.predict(tf.tensor2d(input, [input.length / width, width])));
    const data = (out as tf.Tensor).dataSync() as Float32Array;
    (out as tf.Tensor).dispose();
    return data;
  } finally {
    model.dispose();
  }
}

/** Copies the layers-format files of a net's folder. */
async function copyLayersModel(from: string, to: string) {
  await Deno.mkdir(to, { recursive: true });
  for (const f of ["model.json", "weights.bin"]) await Deno.copyFile(join(from, f), join(to, f));
}

/** The web page's folder: the page, tfjs's browser bundles and the model as a script. */
async function writeWeb(dir: string, from: string, g: Net, run: string) {
  const require = createRequire(import.meta.url);
  for (const b of TFJS_BUNDLES) {
    await Deno.copyFile(require.resolve(b), join(dir, basename(b)));
  }
  const json = JSON.parse(await Deno.readTextFile(join(from, "model.json")));
  const model = {
    noiseDim: g.layers[0].W.shape[0],
    side: Math.round(Math.sqrt(g.layers.at(-1)!.W.shape[1] as number)),
    pixelScale: g.pixelScale,
    topology: json.modelTopology,
    weightSpecs: json.weightsManifest.flatMap((m: { weights: unknown[] }) => m.weights),
    weights: encodeBase64(await Deno.readFile(join(from, "weights.bin"))),
  };
  await Deno.writeTextFile(join(dir, "model.js"), `window.GAN_MODEL = ${JSON.stringify(model)};\n`);
  await Deno.writeTextFile(join(dir, "index.html"), pageHtml(run));
}

/** The README of an export, by format. */
function readme(format: Format, run: string, g: Net, checks: string[], raw: boolean): string {
  const nd = g.layers[0].W.shape[0];
  const pixels = g.layers.at(-1)!.W.shape[1];
  const side = Math.round(Math.sqrt(pixels as number));
  const symmetric = g.pixelScale === "symmetric";
  const trained = symmetric ? "pixels on [-1,1] ((x + 1) / 2 gives [0,1])" : "pixels on [0,1]";
  const head = (scale: string) =>
    `# ${run}: exported ${format}\n\nThe counterfeiter maps ${nd} standard normal numbers` +
    ` per digit to ${pixels} ${scale}; the police maps such images to the` +
    ` probability that they are real. Digits are white on black, as in MNIST.\n`;
  if (format === "onnx") {
    const scale = raw
      ? `${trained}, not clipped (exported with --raw)`
      : "pixels on [0,1], clipped to it in the graph";
    return `${head(scale)}
Inputs and outputs (batch dimension free): \`counterfeiter.onnx\`: noise [batch, ${nd}] -> images;
\`police.onnx\`: images -> probability [batch, 1]. The pixel convention is also in each model's
metadata (\`pixels\`).

\`\`\`python
import numpy as np, onnxruntime as ort
g = ort.InferenceSession("counterfeiter.onnx")
images = g.run(None, {"noise": np.random.randn(16, ${nd}).astype(np.float32)})[0]
digits = ${
      raw ? (symmetric ? "((images + 1) / 2).clip(0, 1)" : "images.clip(0, 1)") : "images"
    }.reshape(16, ${side}, ${side})
\`\`\`

Checked when written: ${checks.join("; ")} (64 inputs).
`;
  }
  if (format === "tfjs") {
    const toUnit = symmetric ? ".add(1).div(2)" : "";
    return `${head(`${trained}, not clipped`)}
TensorFlow.js layers models: \`counterfeiter/\` and \`police/\` (\`model.json\`, \`weights.bin\`).
In Node, with plain \`@tensorflow/tfjs\` (no native build, no network: the files are read here):

\`\`\`js
${tfjsSnippet(nd, toUnit)}\`\`\`

In a browser, serve this folder and \`tf.loadLayersModel("counterfeiter/model.json")\`.
`;
  }
  return `${head(`${trained}`)}
Open \`index.html\` in a browser (double-click works: nothing is fetched). To put it on the web,
copy the folder to any static host.
`;
}

/** The tfjs export's Node snippet (tests run it as written). */
export function tfjsSnippet(noiseDim: number, toUnit: string): string {
  return `import * as tf from "@tensorflow/tfjs";
import { readFileSync } from "node:fs";

// an IO handler that reads the exported files (file:// URLs need @tensorflow/tfjs-node)
const files = (dir) => ({
  load: async () => {
    const json = JSON.parse(readFileSync(\`\${dir}/model.json\`, "utf8"));
    const bin = readFileSync(\`\${dir}/weights.bin\`);
    return {
      modelTopology: json.modelTopology,
      weightSpecs: json.weightsManifest.flatMap((m) => m.weights),
      weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength),
    };
  },
});
const g = await tf.loadLayersModel(files("counterfeiter"));
const images = tf.tidy(() => g.predict(tf.randomNormal([16, ${noiseDim}]))${toUnit}.clipByValue(0, 1));
console.log(images.shape.join("x"), images.min().dataSync()[0], images.max().dataSync()[0]);
`;
}

/**
 * Removes the temporary folders killed exports left in `dir`: an export holds a lock on its
 * folder's `.lock` while it writes, and a lock nobody holds is a process gone.
 */
async function removeStaleExports(dir: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    if (!e.isDirectory || !/^\..+-export-/.test(e.name)) continue;
    if ((await lockHeld(join(dir, e.name, LOCK))) === false) {
      await Deno.remove(join(dir, e.name), { recursive: true }).catch(() => {});
    }
  }
}

/** The lock file inside an export's temporary folder (removed before it becomes --out). */
const LOCK = ".lock";

/** `deno task export`; returns the exit code. */
export async function exportCommand(app: App, args: string[]): Promise<number> {
  const parsed = parseCommand<
    { out?: string; format: string; checkpoint?: string; results: string; raw: boolean }
  >(args, USAGE, {
    out: { type: "string" },
    format: { type: "string", default: "onnx" },
    checkpoint: { type: "string" },
    results: { type: "string", default: "results" },
    raw: { type: "boolean", default: false },
  }, { positionals: true });
  if (parsed?.values.raw && parsed.values.format !== "onnx") {
    throw new UsageError(
      `--raw is an onnx option; --format ${parsed.values.format} exports the nets as trained`,
      USAGE,
    );
  }
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  if (positionals.length !== 1) throw new UsageError("expected one run", USAGE);
  if (!values.out) throw new UsageError("--out DIR is required: the folder to write", USAGE);
  const format = formatOf(values.format);
  const checkpoint = values.checkpoint === undefined
    ? null
    : intOption("--checkpoint", values.checkpoint, 1, USAGE);
  const out = resolve(values.out);
  if (await exists(out)) {
    throw new UsageError(`--out ${values.out}: already exists; name a new folder`, USAGE);
  }
  if (await exists(dirname(out))) await removeStaleExports(dirname(out));
  const run = await findRun(app, values.results, positionals[0], USAGE);
  const dirs = {
    counterfeiter: await netDirOfRun(run.dir, "counterfeiter", checkpoint, USAGE),
    police: await netDirOfRun(run.dir, "police", checkpoint, USAGE),
  };
  await selectRunBackend(run.config);
  const g = (await loadNet(dirs.counterfeiter)).net, d = (await loadNet(dirs.police)).net;
  await Deno.mkdir(dirname(out), { recursive: true });
  const tmp = await Deno.makeTempDir({ dir: dirname(out), prefix: `.${basename(out)}-export-` });
  // held while we write: the next export removes a folder whose lock nobody holds
  const lock = await Deno.open(join(tmp, LOCK), { write: true, create: true });
  await lock.lock(true);
  try {
    const facts = { run: run.run, checkpoint: checkpoint === null ? "final" : String(checkpoint) };
    let checks: string[] = [];
    if (format === "onnx") {
      checks = await writeOnnx(
        tmp,
        [[g, dirs.counterfeiter], [d, dirs.police]],
        facts,
        values.raw,
      );
    }
    if (format === "tfjs") {
      for (const [name, from] of Object.entries(dirs)) await copyLayersModel(from, join(tmp, name));
    }
    if (format === "web") await writeWeb(tmp, dirs.counterfeiter, g, run.run);
    await Deno.writeTextFile(
      join(tmp, "README.md"),
      readme(format, run.run, g, checks, values.raw),
    );
    const widths = {
      noise: g.layers[0].W.shape[0],
      image: d.layers[0].W.shape[0],
      pixelScale: g.pixelScale,
    };
    const pixels = format === "onnx" && !values.raw ? "[0,1], clipped" : `raw (${g.pixelScale})`;
    const record = { format, ...facts, ...widths, pixels, runDir: run.dir, from: dirs, checks };
    await Deno.writeTextFile(join(tmp, "export.json"), JSON.stringify(record, null, 2) + "\n");
    await Deno.chmod(tmp, 0o755);
    lock.close();
    await Deno.remove(join(tmp, LOCK));
    await Deno.rename(tmp, out);
    for (const c of checks) console.error(c);
  } catch (e) {
    try {
      lock.close();
    } catch { /* closed already */ }
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  } finally {
    disposeNet(g);
    disposeNet(d);
  }
  console.log(format === "web" ? join(out, "index.html") : out);
  return 0;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}
