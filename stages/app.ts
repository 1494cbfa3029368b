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
import type { App, RuntimeChoice } from "../pipeline/app.ts";
import { type BackendName, cpuModel, selectBackend } from "./backends/mod.ts";
import { runCli } from "../pipeline/cli.ts";
import type { Stage } from "../pipeline/stage.ts";
import { adversarialStage } from "./adversarial.ts";
import { downloadStage } from "./download.ts";
import { evaluateStage } from "./evaluate.ts";
import { evaluatorStage } from "./evaluator.ts";
import { preprocessStage } from "./preprocess.ts";
import {
  goalSummary,
  RANK_METRICS,
  runFigures,
  writeSweepReport,
} from "./reporting/sweep_report.ts";
import { REPORT_HANDOFF, reportStage } from "./report.ts";
import { type Config, CONFIG_SPEC } from "./schema.ts";
import { DEFAULT_RANK } from "./vocabulary.ts";
import { trainCounterfeiterStage } from "./train_counterfeiter.ts";
import { trainPoliceStage } from "./train_police.ts";
import { sampleCommand } from "./commands/sample.ts";
import { exportCommand } from "./commands/export.ts";
import { uiCommand } from "./ui/server.ts";

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

/** The tensor engine a config asks for, as the runtime its tensor stages compute on. */
async function tensorRuntime(cfg: Config): Promise<RuntimeChoice> {
  const b = await selectBackend(cfg.backend as BackendName, { flushDenormals: cfg.flushDenormals });
  return {
    runtime: b.runtime,
    describe: `backend: ${b.runtime.facts.backend} (${b.reason})${
      b.notes.length ? "; " + b.notes.join("; ") : ""
    }`,
    environment: { cpu: cpuModel(), backend: { name: b.name, reason: b.reason, notes: b.notes } },
  };
}

/** The application the engine runs. */
export const APP: App<Config> = {
  name: "gan-pipeline",
  entry: import.meta.url,
  config: CONFIG_SPEC,
  stages: STAGES,
  figures: (summaries) => ({ ...runFigures(summaries) }),
  trainingStage: "adversarial",
  runtime: tensorRuntime,
  commands: { sample: sampleCommand, export: exportCommand, ui: uiCommand },
  threadsVariable: "OPENBLAS_NUM_THREADS",
  report: REPORT_HANDOFF,
  debugVariable: "GAN_DEBUG",
  sweep: {
    rankMetrics: RANK_METRICS,
    defaultRank: DEFAULT_RANK,
    higherIsBetter: ["classifierScore", "classesCovered", "goalMarksMet"],
    resource: "adversarial.iterations",
    writeReport: writeSweepReport,
    summary: goalSummary,
  },
};

if (import.meta.main) await runCli(APP);
