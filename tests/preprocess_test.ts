/** The preprocess stage: scaling, flattening, subsets (first and seeded). */
import assert from "node:assert/strict";
import { ResumableState } from "../pipeline/resumable.ts";
import { join } from "node:path";
import { Progress } from "../pipeline/progress.ts";
import { readNpy, readNpyF32 } from "../stages/formats/npy.ts";
import { preprocessStage } from "../stages/preprocess.ts";
import { configOf, idxSet, tinyConfig } from "./helpers.ts";

/** A download entry's folder with the tiny dataset, as the download stage names its files. */
async function downloaded(): Promise<string> {
  const dir = await Deno.makeTempDir();
  for (const [role, bytes] of Object.entries(idxSet({ train: 50, test: 20, side: 6 }))) {
    await Deno.writeFile(join(dir, `${role}.idx`), bytes);
  }
  return dir;
}

async function run(pre: Record<string, unknown>) {
  const download = await downloaded();
  const cfg = await configOf(
    await Deno.makeTempDir(),
    tinyConfig({ trainImages: "a", trainLabels: "b", testImages: "c", testLabels: "d" }, {
      preprocess: pre,
    }),
  );
  const outDir = await Deno.makeTempDir();
  const summary = await preprocessStage.run({
    cfg,
    inputs: { download },
    outDir,
    resume: new ResumableState(await Deno.makeTempDir()),
    progress: new Progress({ quiet: true }),
    runtime: { facts: { backend: "cpu", tfjs: "", denormals: "flush" } },
  });
  const x = await readNpyF32(join(outDir, "train_x.npy"));
  const y = await readNpy(join(outDir, "train_y.npy"));
  const tx = await readNpyF32(join(outDir, "test_x.npy"));
  return { summary, x, y, tx };
}

Deno.test("images are flattened and scaled to [0,1]; labels kept in order", async () => {
  const { summary, x, y, tx } = await run({});
  assert.deepEqual(x.shape, [50, 36]);
  assert.deepEqual(tx.shape, [20, 36]);
  assert.deepEqual(y.shape, [50]);
  assert.ok(x.data.every((v) => v >= 0 && v <= 1));
  const raw = idxSet({ train: 50, test: 20, side: 6 });
  // IDX image payload starts after 16 header bytes; label payload after 8
  assert.equal(x.data[7], raw.trainImages[16 + 7] / 255);
  assert.equal(y.data[3], raw.trainLabels[8 + 3]);
  assert.deepEqual(summary, { train: 50, test: 20, dim: 36, imageShape: [6, 6] });
});

Deno.test("subsets: the first N rows, or a seeded sample that repeats", async () => {
  const first = await run({ trainSubset: 10, testSubset: 5 });
  const all = await run({});
  assert.deepEqual(first.x.shape, [10, 36]);
  assert.deepEqual(Array.from(first.x.data), Array.from(all.x.data.subarray(0, 360)));
  const a = await run({ trainSubset: 10, subsetMode: "random" });
  const b = await run({ trainSubset: 10, subsetMode: "random" });
  assert.deepEqual(Array.from(a.y.data), Array.from(b.y.data));
  assert.notDeepEqual(Array.from(a.x.data), Array.from(first.x.data));
});
