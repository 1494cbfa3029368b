/**
 * `deno task sample RUN [--n 64] [--seed S] [--checkpoint ITER] [--out FILE.png|FILE.npy]`:
 * new digits from a run's counterfeiter, as a grid PNG or an `.npy` of N x 784 floats on [0,1]
 * (pixels outside it clipped), without knowing the cache's layout. The run is named as `diff`
 * takes it: a run folder, or a run name or prefix under `--results`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { outKind } from "./sample.ts";
 * assert.equal(outKind("digits.png"), "png");
 * assert.equal(outKind("digits.npy"), "npy");
 * assert.throws(() => outKind("digits.jpg"), /--out digits\.jpg: expected a \.png or \.npy file/);
 * ```
 */
import { join } from "node:path";
import type { App } from "../../pipeline/app.ts";
import { parseCommand } from "../../pipeline/args.ts";
import { UsageError } from "../../pipeline/errors.ts";
import { Rng } from "../../pipeline/rng.ts";
import { findRun } from "../../pipeline/runs_cli.ts";
import { loadNet } from "../formats/model_io.ts";
import { writeNpy } from "../formats/npy.ts";
import { gridPng } from "../formats/png.ts";
import { clip01, disposeNet, inferImages, toUnitScale } from "../training/nets.ts";
import { STREAM } from "../training/streams.ts";
import { intOption, netDirOfRun, selectRunBackend } from "./run_nets.ts";
import { machineMemory, tooLarge } from "../training/memory.ts";

const USAGE = `usage: deno task sample RUN [--n N] [--seed S] [--checkpoint ITER] [--out FILE]
  new digits from a run's counterfeiter (RUN: a run folder, or a run name or prefix)
  --n N             how many (default 64)
  --seed S          the noise's seed (default 0; the same seed draws the same digits)
  --checkpoint ITER the counterfeiter at a checkpoint of the loop (default: the final one)
  --out FILE        a grid .png, or an .npy of N x 784 floats on [0,1]
                    (default: samples-s<S>-n<N>.png in the run folder)
  --results DIR     where run names are looked up (default: results)`;

/** What `--out` asks for, from its ending. */
export function outKind(path: string): "png" | "npy" {
  if (path.endsWith(".png")) return "png";
  if (path.endsWith(".npy")) return "npy";
  throw new UsageError(`--out ${path}: expected a .png or .npy file`, USAGE);
}

/** `deno task sample`; returns the exit code. */
export async function sampleCommand(app: App, args: string[]): Promise<number> {
  const parsed = parseCommand<
    { n: string; seed: string; checkpoint?: string; out?: string; results: string }
  >(args, USAGE, {
    n: { type: "string", default: "64" },
    seed: { type: "string", default: "0" },
    checkpoint: { type: "string" },
    out: { type: "string" },
    results: { type: "string", default: "results" },
  }, { positionals: true });
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  if (positionals.length !== 1) throw new UsageError("expected one run", USAGE);
  const n = intOption("--n", values.n, 1, USAGE), seed = intOption("--seed", values.seed, 0, USAGE);
  const checkpoint = values.checkpoint === undefined
    ? null
    : intOption("--checkpoint", values.checkpoint, 1, USAGE);
  const run = await findRun(app, values.results, positionals[0], USAGE);
  const out = values.out ?? join(run.dir, `samples-s${seed}-n${n}.png`);
  const kind = outKind(out);
  const existed = await Deno.stat(out).then(() => true, () => false);
  await selectRunBackend(run.config);
  const { net: g } = await loadNet(await netDirOfRun(run.dir, "counterfeiter", checkpoint, USAGE));
  try {
    const nd = g.layers[0].W.shape[0] as number;
    const memory = machineMemory();
    const hidden = g.layers.slice(0, -1).map((l) => l.W.shape[1] as number);
    const big = memory === null
      ? null
      : tooLarge({ noiseDim: nd, counterfeiter: hidden, police: [] }, { "--n": n }, memory);
    if (big) throw new UsageError(big, USAGE);
    const noise = new Rng(seed, STREAM.sample).normals(n * nd);
    const unit = toUnitScale(inferImages(g, noise), g.pixelScale);
    const images = clip01(unit).clipped;
    const dim = images.length / n;
    if (kind === "npy") await writeNpy(out, images, [n, dim]);
    else await Deno.writeFile(out, gridPng(images, Math.round(Math.sqrt(dim)), n));
  } finally {
    disposeNet(g);
  }
  // the path stays stdout's last line (scripts read it); the overwrite is said on stderr
  if (existed) console.error(`overwrote ${out}`);
  console.log(out);
  return 0;
}
