/**
 * Stage `evaluate`: for each checkpoint of the adversarial loop and for the final networks,
 * mean D(real) on held-out test images and mean D(fake) on fresh noise, and, with the
 * evaluator classifier, the Frechet distance of penultimate features (generated vs real
 * test), the class histogram of generated digits, classes covered, KL to uniform and the
 * classifier score; the same metrics for real test images against real train images (what a
 * perfect counterfeiter would reach); the share of generated pixels outside [0,1] (the
 * output layer is linear; images are clipped before scoring). Writes `metrics.json`,
 * `samples.npy` (the final scored samples, N x 784, clipped to [0,1] as scored), and sample grids
 * `grids/iter_NNNNNN.png`, `grids/final.png`, `grids/real.png` from one fixed noise batch.
 */
import { join } from "node:path";
import { readNpy, readNpyF32, writeNpy } from "./formats/npy.ts";
import { Rng } from "../pipeline/rng.ts";
import type { Progress } from "../pipeline/progress.ts";
import type { Stage } from "../pipeline/stage.ts";
import type { Config } from "./schema.ts";
import { loadScorer, type Scorer } from "./evaluation/scorer.ts";
import { matmul } from "./evaluation/matmul.ts";
import {
  classesCovered,
  classHistogram,
  classifierScore,
  frechetDistance,
  klToUniform,
} from "./evaluation/metrics.ts";
import { loadNet } from "./formats/model_io.ts";
import {
  clip01,
  disposeNet,
  fromUnitScale,
  inferImages,
  meanProbability,
  toUnitScale,
} from "./training/nets.ts";
import { gridPng } from "./formats/png.ts";
import {
  ARTIFACT,
  artifact,
  type CheckpointMetrics,
  GRID_IMAGES,
  type ImageMetrics,
  iterName,
} from "./vocabulary.ts";
import { STREAM } from "./training/streams.ts";
import { goalMarks, tailFrechet } from "./evaluation/goal.ts";
import { copyRows } from "./training/fit.ts";

/** Scores images against reference features with the classifier. */
export function scoreImages(
  images: Float32Array,
  { classifier, refFeatures, dim, coveredShare }: {
    classifier: Scorer;
    /** The classifier's features of the real test images. */
    refFeatures: Float32Array;
    dim: number;
    /** The share of samples that makes a class covered. */
    coveredShare: number;
  },
): ImageMetrics {
  const n = images.length / dim;
  const f = classifier.features(images, n);
  const d = classifier.featureDim;
  const probs = classifier.probabilities(images, n);
  const hist = classHistogram(probs, n, 10);
  return {
    frechet: frechetDistance(f, n, refFeatures, refFeatures.length / d, d),
    classHistogram: hist,
    classesCovered: classesCovered(hist, coveredShare),
    klToUniform: klToUniform(hist),
    classifierScore: classifierScore(probs, n, 10),
  };
}

/** What scoring a checkpoint needs. */
interface ScoreContext {
  cfg: Config;
  classifier: Scorer;
  /** The first `n` real test images, and their classifier features. */
  realTest: Float32Array;
  refFeatures: Float32Array;
  dim: number;
  n: number;
  /** The fixed noise of the sample grids. */
  gridNoise: Float32Array;
  outDir: string;
}

/** What {@link scoreImages} needs from the context. */
const scorer = (ctx: ScoreContext) => ({
  classifier: ctx.classifier,
  refFeatures: ctx.refFeatures,
  dim: ctx.dim,
  coveredShare: ctx.cfg.evaluate.coveredShare,
});

/** The reference: real train images scored against the real test images, and the real grid. */
async function scoreReference(ctx: ScoreContext, trainPath: string): Promise<ImageMetrics> {
  const { cfg, dim, n } = ctx;
  const train = await readNpyF32(trainPath);
  const trainRows = new Rng(cfg.seed, STREAM.evaluateTrainRows).permutation(train.shape[0])
    .slice(0, Math.min(n, train.shape[0]));
  const realTrain = copyRows(train.data, dim, trainRows);
  const side = Math.round(Math.sqrt(dim));
  await Deno.writeFile(
    artifact(ctx.outDir, "grids", "real.png"),
    gridPng(ctx.realTest, side, Math.min(GRID_IMAGES, n)),
  );
  return scoreImages(realTrain, scorer(ctx));
}

/** The adversarial entry's checkpoints in order, then its final networks. */
async function checkpointsOf(
  adversarial: string,
): Promise<{ iteration: number | "final"; dir: string }[]> {
  const points: { iteration: number | "final"; dir: string }[] = [];
  const ckDir = artifact(adversarial, "checkpoints");
  for await (const e of Deno.readDir(ckDir)) {
    const m = /^iter_(\d+)$/.exec(e.name);
    if (m) points.push({ iteration: Number(m[1]), dir: join(ckDir, e.name) });
  }
  points.sort((a, b) => (a.iteration as number) - (b.iteration as number));
  points.push({ iteration: "final", dir: adversarial });
  return points;
}

/** One checkpoint's metrics and sample grid (and, for the final nets, samples.npy). */
async function scoreCheckpoint(
  ctx: ScoreContext,
  p: { iteration: number | "final"; dir: string },
): Promise<CheckpointMetrics> {
  const { cfg, dim, n } = ctx;
  const nd = cfg.model.noiseDim;
  const { net: g } = await loadNet(artifact(p.dir, "counterfeiter"));
  const { net: d } = await loadNet(artifact(p.dir, "police"));
  try {
    // fresh noise: the same draws at every checkpoint, so the numbers compare
    const noise = new Rng(cfg.seed, STREAM.evaluateNoise).normals(n * nd);
    // the police reads, and the counterfeiter makes, images in the training scale; every image
    // metric is on [0,1]
    const raw = inferImages(g, noise);
    const unit = toUnitScale(raw, g.pixelScale);
    const { clipped, outside } = clip01(unit);
    const metrics = scoreImages(clipped, scorer(ctx));
    const row: CheckpointMetrics = {
      iteration: p.iteration,
      dReal: meanProbability(d, fromUnitScale(ctx.realTest, d.pixelScale)),
      dFake: meanProbability(d, raw),
      outOfRangeFraction: outside,
      ...metrics,
    };
    const side = Math.round(Math.sqrt(dim));
    const grid = gridPng(
      toUnitScale(inferImages(g, ctx.gridNoise), g.pixelScale),
      side,
      GRID_IMAGES,
    );
    const name = p.iteration === "final" ? "final" : iterName(p.iteration);
    await Deno.writeFile(artifact(ctx.outDir, "grids", `${name}.png`), grid);
    if (p.iteration === "final") {
      // the images that were scored: every .npy of images is on [0,1], clipped
      await writeNpy(artifact(ctx.outDir, "samples"), clipped, [n, dim]);
    }
    return row;
  } finally {
    disposeNet(g);
    disposeNet(d);
  }
}

/** The stage's summary (the figures runs, sweeps and the goal line use), logged in brief. */
function summarise(
  metrics: Parameters<typeof goalMarks>[0] & {
    checkpoints: CheckpointMetrics[];
    final: CheckpointMetrics;
  },
  reference: ImageMetrics,
  progress: Progress,
): Record<string, unknown> {
  const { final, checkpoints: rows } = metrics;
  progress.log(
    `  final: D(real) ${final.dReal.toFixed(3)}, D(fake) ${final.dFake.toFixed(3)}, FD ${
      final.frechet.toFixed(2)
    } (real: ${reference.frechet.toFixed(2)}), classes ${final.classesCovered}, score ${
      final.classifierScore.toFixed(2)
    } (real: ${reference.classifierScore.toFixed(2)})`,
  );
  const goal = goalMarks(metrics);
  progress.log(`  goal: ${goal.met} of ${goal.marks.length} marks met`);
  return {
    bestFrechet: Math.min(...rows.map((r) => r.frechet)),
    tailFrechet: tailFrechet(rows),
    goalMarksMet: goal.met,
    goalMiss: goal.miss,
    dReal: final.dReal,
    dFake: final.dFake,
    frechet: final.frechet,
    classesCovered: final.classesCovered,
    classifierScore: final.classifierScore,
    klToUniform: final.klToUniform,
    outOfRangeFraction: final.outOfRangeFraction,
    referenceFrechet: reference.frechet,
  };
}

/** The evaluate stage. */
export const evaluateStage: Stage<Config> = {
  name: "evaluate",
  code: import.meta.url,
  needs: ["preprocess", "adversarial", "evaluator"],
  usesRuntime: true,
  doc: "metrics and sample grids per checkpoint",
  outputs: () => [ARTIFACT.metrics, ARTIFACT.samples, "grids/final.png"],
  pick: (cfg) => ({ seed: cfg.seed, evaluate: cfg.evaluate, noiseDim: cfg.model.noiseDim }),
  async run({ cfg, inputs, outDir, progress, live }) {
    const test = await readNpyF32(artifact(inputs.preprocess, "testX"));
    const dim = test.shape[1];
    const n = Math.min(cfg.evaluate.samples, test.shape[0]);
    const classifier = await loadScorer(artifact(inputs.evaluator, "classifier"), matmul());
    await Deno.mkdir(artifact(outDir, "grids"));
    try {
      const realTest = test.data.subarray(0, n * dim);
      const ctx: ScoreContext = {
        cfg,
        classifier,
        realTest,
        refFeatures: classifier.features(realTest, n),
        dim,
        n,
        gridNoise: new Rng(cfg.seed, STREAM.evaluateGridNoise).normals(
          GRID_IMAGES * cfg.model.noiseDim,
        ),
        outDir,
      };
      const reference = await scoreReference(ctx, artifact(inputs.preprocess, "trainX"));
      const points = await checkpointsOf(inputs.adversarial);
      const rows: CheckpointMetrics[] = [];
      progress.start("evaluate", points.length);
      for (const [i, p] of points.entries()) {
        const row = await scoreCheckpoint(ctx, p);
        rows.push(row);
        progress.update(i + 1, { FD: row.frechet, classes: row.classesCovered });
        live?.row({ kind: "checkpoint", index: i + 1, of: points.length, ...row });
      }
      progress.done();
      const labels = (await readNpy(artifact(inputs.preprocess, "testY"))).data as Uint8Array;
      const trueHist = new Array(10).fill(0);
      for (let i = 0; i < n; i++) trueHist[labels[i]]++;
      const metrics = {
        samples: n,
        coveredShare: cfg.evaluate.coveredShare,
        reference: {
          ...reference,
          trueTestHistogram: trueHist,
          evaluator: classifier.kind,
          frechetFactor: classifier.frechetFactor,
        },
        checkpoints: rows,
        final: rows.at(-1)!,
      };
      await Deno.writeTextFile(
        artifact(outDir, "metrics"),
        JSON.stringify(metrics, null, 2) + "\n",
      );
      return summarise(metrics, reference, progress);
    } finally {
      classifier.dispose();
    }
  },
};
