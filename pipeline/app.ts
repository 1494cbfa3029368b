/**
 * What an application gives the engine: its stages, its config schema, how its sweeps are
 * ranked and reported, and the module that runs its command line. The engine imports
 * nothing of the application; the application's entry passes itself to {@link runCli}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { App } from "./app.ts";
 * import { ENGINE_FIELDS, obj } from "./schema.ts";
 * const app: App = {
 *   name: "demo",
 *   entry: import.meta.url,
 *   config: { schema: obj("demo", { ...ENGINE_FIELDS }) },
 *   stages: [],
 *   figures: () => ({}),
 *   sweep: {
 *     rankMetrics: ["loss"],
 *     defaultRank: "loss",
 *     higherIsBetter: [],
 *     writeReport: () => Promise.resolve(""),
 *   },
 * };
 * assert(app.stages.length === 0);
 * ```
 */
import type { ConfigSpec } from "./config.ts";
import type { EngineConfig } from "./schema.ts";
import type { Runtime, Stage } from "./stage.ts";
import type { PointRecord } from "./point_record.ts";
import type { ReportHandoff } from "./run_record.ts";

/** How an application's sweeps are ranked and reported. */
export interface SweepApp {
  /** The metrics a sweep may be ranked by. */
  rankMetrics: readonly string[];
  /** The metric used when a sweep file names none. */
  defaultRank: string;
  /** Metrics where higher is better; the rest rank ascending by default. */
  higherIsBetter: readonly string[];
  /** The config field a halving search's rungs set by default (a length: iterations). */
  resource?: string;
  /** Writes the sweep report into `dir`; returns its path. */
  writeReport(report: SweepReport): Promise<string>;
  /** Lines the terminal prints when a sweep ends, before the report's path (e.g. claims over seeds). */
  summary?(report: SweepReport): Promise<string[]>;
}

/** What a sweep report is written from. */
export interface SweepReport {
  /** The sweep's folder (the report goes here). */
  dir: string;
  name: string;
  points: PointRecord[];
  rank: { metric: string; order: "asc" | "desc" };
  /** The cache's folder (`<results>/cache`), where the points' entries are. */
  cacheRoot: string;
  /**
   * A halving search's rungs: a point's figures are from the furthest rung it reached
   * (`rungs[reached - 1]` of `resource`), so points stopped early were measured shorter.
   */
  search?: { resource: string; rungs: number[] };
}

/**
 * The final figures of a run by name (for `deno task runs` and `diff`), from its stages'
 * summaries.
 */
export type RunFigures = (summaries: Record<string, unknown>) => Record<string, number | undefined>;

/** The runtime an application's stages compute on, as chosen for one config. */
export interface RuntimeChoice {
  runtime: Runtime;
  /** One line for the log: what was chosen and why. */
  describe: string;
  /** More for run.json (what was tried, on which CPU). */
  environment?: Record<string, unknown>;
}

/** An application of the engine. */
export interface App<C extends EngineConfig = EngineConfig> {
  /** Its name, for usage lines. */
  name: string;
  /** The URL of the module that runs its command line (sweeps start points through it). */
  entry: string;
  config: ConfigSpec<C>;
  /** Every stage, upstream first. */
  stages: Stage<C>[];
  sweep: SweepApp;
  /** A run's final figures, from its stages' summaries. */
  figures: RunFigures;
  /** The stage whose entry's creation is when a run trained (the runs list shows it). */
  trainingStage?: string;
  /**
   * Chooses the runtime a config's stages compute on (a tensor engine, say). Without one, a
   * stage that `usesRuntime` keys on no facts.
   */
  runtime?(cfg: C): Promise<RuntimeChoice>;
  /** The application's own commands (`sample`, say), by name; each returns its exit code. */
  commands?: Record<string, (app: App, args: string[]) => Promise<number>>;
  /**
   * The environment variable that sets how many threads a run computes on (a math
   * library's, say): a sweep sets it for each point, to share the cores.
   */
  threadsVariable?: string;
  /**
   * The run's report: the file the last stage's entry holds, copied into the run folder with
   * the run record put in place of `marker`.
   */
  report?: ReportHandoff;
  /** An environment variable that, when set, makes errors print their stack. */
  debugVariable?: string;
}

/** The application's runtime for `cfg`, or none. */
export function runtimeOf<C extends EngineConfig>(app: App<C>, cfg: C): Promise<RuntimeChoice> {
  return app.runtime?.(cfg) ?? Promise.resolve({ runtime: { facts: {} }, describe: "" });
}
