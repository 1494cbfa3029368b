/**
 * Stage `preprocess`: uint8 images to float32 in [0,1], flattened to rows*cols, with an
 * optional subset (first N or a seeded sample); train and test kept apart. Writes
 * `train_x.npy` (N x D `<f4`), `train_y.npy` (N `|u1`), `test_x.npy`, `test_y.npy`.
 */
import { join } from "node:path";
import { writeNpy } from "./formats/npy.ts";
import { Rng } from "../pipeline/rng.ts";
import type { Stage } from "../pipeline/stage.ts";
import type { Config } from "./schema.ts";
import { parseIdx } from "./formats/idx.ts";
import { STREAM } from "./training/streams.ts";
import { ARTIFACT } from "./vocabulary.ts";

/** Picks `n` row indices of `total`: the first n, or a seeded sample kept in file order. */
export function subsetIndices(
  total: number,
  n: number | null,
  mode: "first" | "random",
  rng: () => Rng,
): Int32Array {
  const k = n === null ? total : Math.min(n, total);
  if (mode === "first" || k === total) return Int32Array.from({ length: k }, (_, i) => i);
  return rng().permutation(total).slice(0, k).sort();
}

/** Scales the chosen rows of a uint8 image array to float32 in [0,1]. */
export function scaleRows(pixels: Uint8Array, dim: number, rows: Int32Array): Float32Array {
  const out = new Float32Array(rows.length * dim);
  for (let r = 0; r < rows.length; r++) {
    const src = rows[r] * dim;
    for (let j = 0; j < dim; j++) out[r * dim + j] = pixels[src + j] / 255;
  }
  return out;
}

/** The preprocess stage. */
export const preprocessStage: Stage<Config> = {
  name: "preprocess",
  code: import.meta.url,
  needs: ["download"],
  doc: "scale to [0,1], flatten, subset",
  outputs: () => [ARTIFACT.trainX, ARTIFACT.trainY, ARTIFACT.testX, ARTIFACT.testY],
  pick: (cfg) => ({
    preprocess: cfg.preprocess,
    seed: cfg.preprocess.subsetMode === "random" ? cfg.seed : null,
  }),
  async run({ cfg, inputs, outDir }) {
    // made on first use: a "first" subset never reads the seed, and its key does not hold it
    let stream: Rng | null = null;
    const rng = () => (stream ??= new Rng(cfg.seed, STREAM.preprocessSubset));
    const summary: Record<string, unknown> = {};
    for (const split of ["train", "test"] as const) {
      const dir = inputs.download;
      const images = parseIdx(
        await Deno.readFile(join(dir, `${split}Images.idx`)),
        `${split} images`,
        3,
      );
      const labels = parseIdx(
        await Deno.readFile(join(dir, `${split}Labels.idx`)),
        `${split} labels`,
        1,
      );
      const [total, rows, cols] = images.dims;
      const dim = rows * cols;
      const n = split === "train" ? cfg.preprocess.trainSubset : cfg.preprocess.testSubset;
      const idx = subsetIndices(total, n, cfg.preprocess.subsetMode, rng);
      const x = scaleRows(images.data, dim, idx);
      const y = Uint8Array.from(idx, (i) => labels.data[i]);
      await writeNpy(join(outDir, `${split}_x.npy`), x, [idx.length, dim]);
      await writeNpy(join(outDir, `${split}_y.npy`), y, [idx.length]);
      summary[split] = idx.length;
      summary.dim = dim;
      summary.imageShape = [rows, cols];
    }
    return summary;
  },
};
