/**
 * Stage `train_counterfeiter`: the lecture's warm-up for the counterfeiter. Fits it once on
 * the warm-up noise with target 1, through the police in inference mode, updating only the
 * counterfeiter. Writes `counterfeiter/` (with its Adam state).
 */
import { readNpyF32 } from "./formats/npy.ts";
import type { Stage } from "../pipeline/stage.ts";
import type { Config } from "./schema.ts";
import { makeGan } from "./training/gan.ts";
import { loadNet, saveNet } from "./formats/model_io.ts";
import { disposeNet } from "./training/nets.ts";
import { STREAM, streamsFor } from "./training/streams.ts";
import { Rng } from "../pipeline/rng.ts";
import { pickPaths } from "../pipeline/pick.ts";
import { adamPaths, ARTIFACT, artifact, fitOnly } from "./vocabulary.ts";

/** The train_counterfeiter stage. */
export const trainCounterfeiterStage: Stage<Config> = {
  name: "train_counterfeiter",
  code: import.meta.url,
  needs: ["train_police"],
  usesRuntime: true,
  doc: "warm-up: counterfeiter fit once through the frozen police",
  outputs: () => ["counterfeiter/model.json", "counterfeiter/weights.bin", ARTIFACT.summary],
  // the nets (and so the model's shape) come from train_police's outputs, which its key holds
  pick: (cfg) =>
    pickPaths(cfg, [
      "seed",
      "model.noiseDim",
      ...adamPaths("counterfeiter"),
      "loss",
      "warmup.fitBatchSize",
      "adversarial.policeDropoutInCounterfeiterStep",
    ]),
  async run({ cfg, inputs, outDir }) {
    const { net: d } = await loadNet(artifact(inputs.train_police, "police"));
    const { net: g } = await loadNet(artifact(inputs.train_police, "counterfeiterInit"));
    try {
      const noise = (await readNpyF32(artifact(inputs.train_police, "warmupNoise"))).data;
      const streams = streamsFor(cfg, "warmup");
      streams.shuffle = new Rng(cfg.seed, STREAM.warmupCounterfeiterShuffle);
      const { path, optG } = makeGan(fitOnly(cfg, "counterfeiter"), g, d, streams);
      const z = path.upload(noise, cfg.model.noiseDim);
      const fit = await path.fitCounterfeiter(z, {
        batchSize: cfg.warmup.fitBatchSize,
        policeDropout: cfg.adversarial.policeDropoutInCounterfeiterStep,
        instanceNoise: 0,
        rateFactor: 1,
      });
      const summary = {
        counterfeiterLoss: fit.loss,
        steps: fit.steps,
        dFake: await path.meanD(path.generate(z)),
      };
      await path.sync();
      path.dispose();
      await saveNet(artifact(outDir, "counterfeiter"), g, optG.state());
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
