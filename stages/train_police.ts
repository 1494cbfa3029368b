/**
 * Stage `train_police`: the lecture's warm-up for the police. Initialises both networks
 * from the seed, makes fakes from the untrained counterfeiter, and fits the police once on
 * the first `warmup.batchSize` real images (label 1) and as many fakes (label 0).
 * Writes `police/` (with its Adam state), `counterfeiter_init/` and `warmup_noise.npy`.
 */
import { readNpyF32, writeNpy } from "./formats/npy.ts";
import { Rng } from "../pipeline/rng.ts";
import type { Stage } from "../pipeline/stage.ts";
import type { Config } from "./schema.ts";
import { makeGan } from "./training/gan.ts";
import { NO_TRICKS } from "./training/path.ts";
import { saveNet } from "./formats/model_io.ts";
import { disposeNet, fromUnitScale, initNets } from "./training/nets.ts";
import { STREAM, streamsFor } from "./training/streams.ts";
import { pickPaths } from "../pipeline/pick.ts";
import { adamPaths, ARTIFACT, artifact, fitOnly } from "./vocabulary.ts";

/** The train_police stage. */
export const trainPoliceStage: Stage<Config> = {
  name: "train_police",
  code: import.meta.url,
  needs: ["preprocess"],
  usesRuntime: true,
  doc: "warm-up: police fit once on real + fakes",
  outputs: () => [
    "police/model.json",
    "police/weights.bin",
    "counterfeiter_init/model.json",
    "counterfeiter_init/weights.bin",
    ARTIFACT.warmupNoise,
  ],
  pick: (cfg) => pickPaths(cfg, ["seed", "model", ...adamPaths("police"), "loss.form", "warmup"]),
  async run({ cfg, inputs, outDir }) {
    const train = await readNpyF32(artifact(inputs.preprocess, "trainX"));
    const [nTrain, dim] = train.shape;
    const b = Math.min(cfg.warmup.batchSize, nTrain);
    const { g, d } = initNets(
      cfg,
      dim,
      new Rng(cfg.seed, STREAM.initCounterfeiter),
      new Rng(cfg.seed, STREAM.initPolice),
    );
    try {
      const streams = streamsFor(cfg, "warmup");
      const { path, optD } = makeGan(fitOnly(cfg, "police"), g, d, streams);
      const noise = streams.data.normals(b * cfg.model.noiseDim);
      const fakes = path.generate(path.upload(noise, cfg.model.noiseDim));
      const real = path.upload(
        fromUnitScale(train.data.subarray(0, b * dim), cfg.model.pixelScale),
        dim,
      );
      const fit = await path.fitPolice(real, fakes, {
        batchSize: cfg.warmup.fitBatchSize,
        tricks: NO_TRICKS,
        rateFactor: 1,
      });
      const summary = {
        policeLoss: fit.loss,
        steps: fit.steps,
        dReal: await path.meanD(real),
        dFake: await path.meanD(fakes),
      };
      await path.sync();
      path.dispose();
      await saveNet(artifact(outDir, "police"), d, optD.state());
      await saveNet(artifact(outDir, "counterfeiterInit"), g);
      await writeNpy(artifact(outDir, "warmupNoise"), noise, [b, cfg.model.noiseDim]);
      await Deno.writeTextFile(
        artifact(outDir, "summary"),
        JSON.stringify(summary, null, 2) + "\n",
      );
      return summary;
    } finally {
      disposeNet(g);
      disposeNet(d);
    }
  },
};
