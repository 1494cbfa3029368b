/**
 * A GAN ready to train: both nets, their optimizers, the losses, the random streams, and the
 * training path its steps run on ({@link Gan.path}), chosen once here. The loop
 * (`loop.ts`) and the warm-up stages call the path's steps; `path.ts` says what a path is.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { adamFor } from "./gan.ts";
 * const unset = { learningRate: null, beta1: null, beta2: null };
 * const o = { learningRate: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-7, form: "keras" as const,
 *   police: { ...unset, learningRate: 2e-4 }, counterfeiter: unset };
 * assert.equal(adamFor(o, "police").learningRate, 2e-4);
 * assert.equal(adamFor(o, "counterfeiter").learningRate, 1e-3);
 * ```
 */
import type { Config } from "../schema.ts";
import { Adam } from "./adam.ts";
import { makeAdamEngine } from "./adam_engine.ts";
import { AutodiffPath } from "./autodiff_path.ts";
import { DirectPath, directUnavailable } from "./direct_path.ts";
import { GpuPath, gpuUnsupported } from "./gpu_path.ts";
import { trainingGpu } from "../backends/webgpu.ts";
import { StageError } from "../../pipeline/errors.ts";
import type { WeightAverage } from "./ema.ts";
import { lossFn, type LossForm } from "./losses.ts";
import { type Net, variablesOf } from "./nets.ts";
import type { GanCore, PathKind, TrainingPath } from "./path.ts";
import type { Streams } from "./streams.ts";

/** Everything a GAN step needs, and the path the steps run on. */
export interface Gan extends GanCore {
  readonly path: TrainingPath;
}

/** What training takes from the config: the optimizer's settings and the losses. */
export interface TrainingOptions {
  optimizer: Config["optimizer"];
  loss: Pick<Config["loss"], "form" | "counterfeiter">;
}

/** The Adam settings of one net: the shared ones with the net's own overrides. */
export function adamFor(o: Config["optimizer"], net: "police" | "counterfeiter") {
  const own = o[net];
  return {
    learningRate: own?.learningRate ?? o.learningRate,
    beta1: own?.beta1 ?? o.beta1,
    beta2: own?.beta2 ?? o.beta2,
    epsilon: o.epsilon,
    form: o.form,
  };
}

/** Options of {@link makeGan}. */
export interface GanOptions {
  /**
   * The training path: `auto` takes `webgpu` when the webgpu backend is selected, else
   * `direct` where it can run, else `autodiff`; naming one insists on it (an error says why
   * it cannot run).
   */
  path?: "auto" | PathKind;
  /** The counterfeiter's weight average the path keeps up (null: none). */
  average?: WeightAverage | null;
}

/** Creates both optimizers and chooses the training path. */
export function makeGan(
  opts: TrainingOptions,
  g: Net,
  d: Net,
  streams: Streams,
  { path = "auto", average = null }: GanOptions = {},
): Gan {
  const core: GanCore = {
    g,
    d,
    optG: new Adam(
      variablesOf(g),
      adamFor(opts.optimizer, "counterfeiter"),
      makeAdamEngine(variablesOf(g)),
    ),
    optD: new Adam(
      variablesOf(d),
      adamFor(opts.optimizer, "police"),
      makeAdamEngine(variablesOf(d)),
    ),
    noiseDim: g.layers[0].W.shape[0],
    loss: lossFn(opts.loss.form),
    counterfeiterLoss: opts.loss.counterfeiter,
    streams,
    average,
  };
  return { ...core, path: choosePath(core, path, opts.loss.form) };
}

function choosePath(core: GanCore, want: "auto" | PathKind, form: LossForm): TrainingPath {
  const gpu = trainingGpu();
  if (want === "webgpu" || (want === "auto" && gpu)) {
    if (!gpu) throw new Error("the webgpu training path needs the webgpu backend selected");
    const why = gpuUnsupported(core, form);
    if (why) {
      throw new StageError(
        `backend "webgpu" cannot train ${why}; change the config or use --backend fast-cpu`,
      );
    }
    return new GpuPath(core, gpu);
  }
  if (want === "autodiff") return new AutodiffPath(core);
  const why = directUnavailable(core, form);
  if (why === null) return new DirectPath(core);
  if (want === "direct") throw new Error(`the direct training path cannot run: ${why}`);
  return new AutodiffPath(core);
}
