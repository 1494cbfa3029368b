/** The pipeline's stages, in the order they run. */
import type { Stage } from "../pipeline/stage.ts";
import { adversarialStage } from "./adversarial.ts";
import { downloadStage } from "./download.ts";
import { evaluateStage } from "./evaluate.ts";
import { evaluatorStage } from "./evaluator.ts";
import { preprocessStage } from "./preprocess.ts";
import { reportStage } from "./report.ts";
import { trainCounterfeiterStage } from "./train_counterfeiter.ts";
import { trainPoliceStage } from "./train_police.ts";

/** Every stage of the pipeline, upstream first. */
export const STAGES: Stage[] = [
  downloadStage,
  preprocessStage,
  trainPoliceStage,
  trainCounterfeiterStage,
  adversarialStage,
  evaluatorStage,
  evaluateStage,
  reportStage,
];
