/**
 * The GAN application: its stages in the order they run, its config schema, how its sweeps
 * are ranked and reported. Run as a program, it is the command line (`deno task run`,
 * `sweep`, `verify` start here).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { APP } from "./app.ts";
 * assert(APP.stages[0].name === "download" && APP.stages.at(-1)!.name === "report");
 * ```
 */
import type { App } from "../pipeline/app.ts";
import { runCli } from "../pipeline/cli.ts";
import type { Stage } from "../pipeline/stage.ts";
import { adversarialStage } from "./adversarial.ts";
import { downloadStage } from "./download.ts";
import { evaluateStage } from "./evaluate.ts";
import { evaluatorStage } from "./evaluator.ts";
import { preprocessStage } from "./preprocess.ts";
import { RANK_METRICS, runFigures, writeSweepReport } from "./reporting/sweep_report.ts";
import { reportStage } from "./report.ts";
import { type Config, CONFIG_SPEC } from "./schema.ts";
import { trainCounterfeiterStage } from "./train_counterfeiter.ts";
import { trainPoliceStage } from "./train_police.ts";

/** Every stage of the pipeline, upstream first. */
export const STAGES: Stage<Config>[] = [
  downloadStage,
  preprocessStage,
  trainPoliceStage,
  trainCounterfeiterStage,
  adversarialStage,
  evaluatorStage,
  evaluateStage,
  reportStage,
];

/** The application the engine runs. */
export const APP: App<Config> = {
  name: "gan-pipeline",
  entry: import.meta.url,
  config: CONFIG_SPEC,
  stages: STAGES,
  figures: (summaries) => ({ ...runFigures(summaries) }),
  sweep: {
    rankMetrics: RANK_METRICS,
    defaultRank: "frechet",
    higherIsBetter: ["classifierScore", "classesCovered", "goalMarksMet"],
    resource: "adversarial.iterations",
    writeReport: writeSweepReport,
  },
};

if (import.meta.main) await runCli(APP);
