/**
 * Saving a {@link Net} in the TensorFlow.js layers format (`model.json` + `weights.bin`)
 * through a file IO handler of our own, loadable elsewhere with `tf.loadLayersModel`, plus
 * its Adam state (`adam.json` with the step count, moments as `.npy`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "@tensorflow/tfjs-backend-cpu";
 * import { loadNet, saveNet } from "./model_io.ts";
 * import { Rng } from "../../pipeline/rng.ts";
 * import { initNet } from "../training/nets.ts";
 * const net = initNet({ kind: "police", sizes: [4, 3, 1], output: "sigmoid" }, new Rng(1));
 * const dir = await Deno.makeTempDir();
 * await saveNet(dir, net);
 * const { net: back, adam } = await loadNet(dir);
 * assert.deepEqual(back.layers[0].W.dataSync(), net.layers[0].W.dataSync());
 * assert.equal(adam, null, "saved without an optimizer state");
 * ```
 */
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { join } from "node:path";
import { DataError } from "../../pipeline/errors.ts";
import { readNpyF32, writeNpy } from "./npy.ts";
import type { AdamState } from "../training/adam.ts";
import type { Activation } from "../schema.ts";
import { type Net, variablesOf } from "../training/nets.ts";
import { LEAKY_RELU_SLOPE } from "../vocabulary.ts";

const KERAS_ACTIVATION: Record<Activation | "softmax", string> = {
  softmax: "softmax",
  relu: "relu",
  leakyRelu: "linear", // saved separately below: Keras has no string name for it
  elu: "elu",
  tanh: "tanh",
  sigmoid: "sigmoid",
  linear: "linear",
};

/** Builds the equivalent tfjs-layers Sequential model (police ends in sigmoid). */
export function toLayersModel(net: Net): tfl.Sequential {
  // fixed layer names: tfjs's default ones count layers made earlier in the process, so the
  // same network saved by two runs would differ in model.json and fail its cache seal
  const model = tfl.sequential({ name: net.kind });
  const name = (what: string, i: number) => `${net.kind}_${what}_${i}`;
  const last = net.layers.length - 1;
  net.layers.forEach((layer, i) => {
    const [fanIn, units] = layer.W.shape;
    const act = i < last
      ? net.hiddenActivation
      : net.kind === "police"
      ? "sigmoid"
      : net.kind === "classifier"
      ? "softmax"
      : net.outputActivation;
    model.add(tfl.layers.dense({
      name: name("dense", i),
      units,
      activation: KERAS_ACTIVATION[act] as "relu",
      ...(i === 0 ? { inputShape: [fanIn] } : {}),
    }));
    if (act === "leakyRelu") {
      model.add(tfl.layers.leakyReLU({ name: name("leaky_relu", i), alpha: net.slope }));
    }
    if (i < last && net.dropout > 0) {
      model.add(tfl.layers.dropout({ name: name("dropout", i), rate: net.dropout }));
    }
  });
  model.setWeights(variablesOf(net));
  return model;
}

/** A tfjs IO handler that writes `model.json` and `weights.bin` into a folder. */
export function fileSaveHandler(dir: string): tf.io.IOHandler {
  return {
    save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      const weightData = artifacts.weightData as ArrayBuffer;
      const modelJson = {
        modelTopology: artifacts.modelTopology,
        format: artifacts.format ?? "layers-model",
        generatedBy: artifacts.generatedBy,
        convertedBy: "gan-pipeline",
        weightsManifest: [{ paths: ["weights.bin"], weights: artifacts.weightSpecs }],
      };
      Deno.writeFileSync(join(dir, "weights.bin"), new Uint8Array(weightData));
      Deno.writeTextFileSync(join(dir, "model.json"), JSON.stringify(modelJson));
      return Promise.resolve({
        modelArtifactsInfo: {
          dateSaved: new Date(),
          modelTopologyType: "JSON",
          weightDataBytes: weightData.byteLength,
        },
      });
    },
  };
}

/** A tfjs IO handler that reads what {@link fileSaveHandler} wrote. */
export function fileLoadHandler(dir: string): tf.io.IOHandler {
  return {
    async load(): Promise<tf.io.ModelArtifacts> {
      const path = join(dir, "model.json");
      let json;
      try {
        json = JSON.parse(await Deno.readTextFile(path));
      } catch (e) {
        throw new DataError(`${path}: cannot read model (${(e as Error).message})`);
      }
      const manifest = json.weightsManifest as tf.io.WeightsManifestConfig;
      const buffers: Uint8Array[] = [];
      for (const group of manifest) {
        for (const p of group.paths) buffers.push(await Deno.readFile(join(dir, p)));
      }
      const total = buffers.reduce((n, b) => n + b.length, 0);
      const data = new Uint8Array(total);
      let off = 0;
      for (const b of buffers) {
        data.set(b, off);
        off += b.length;
      }
      return {
        modelTopology: json.modelTopology,
        format: json.format,
        generatedBy: json.generatedBy,
        convertedBy: json.convertedBy,
        weightSpecs: manifest.flatMap((g) => g.weights),
        weightData: data.buffer,
      };
    },
  };
}

/** Saves a net (and optionally its optimizer state) into `dir`. */
export async function saveNet(dir: string, net: Net, adam?: AdamState): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const model = toLayersModel(net);
  await model.save(fileSaveHandler(dir));
  model.dispose();
  const spec = {
    kind: net.kind,
    hiddenActivation: net.hiddenActivation,
    outputActivation: net.outputActivation,
    dropout: net.dropout,
    slope: net.slope,
    pixelScale: net.pixelScale,
    adam: adam ? { t: adam.t } : null,
  };
  if (adam) {
    await writeNpy(join(dir, "adam_m.npy"), concat(adam.m), [sum(adam.m)]);
    await writeNpy(join(dir, "adam_v.npy"), concat(adam.v), [sum(adam.v)]);
  }
  await Deno.writeTextFile(join(dir, "net.json"), JSON.stringify(spec, null, 2) + "\n");
}

const sum = (as: Float32Array[]) => as.reduce((n, a) => n + a.length, 0);

function concat(as: Float32Array[]): Float32Array {
  const out = new Float32Array(sum(as));
  let off = 0;
  for (const a of as) {
    out.set(a, off);
    off += a.length;
  }
  return out;
}

function split(flat: Float32Array, sizes: number[]): Float32Array[] {
  const out: Float32Array[] = [];
  let off = 0;
  for (const n of sizes) {
    out.push(flat.slice(off, off + n));
    off += n;
  }
  return out;
}

/** Loads a net saved by {@link saveNet}, with its optimizer state when one was saved. */
export async function loadNet(dir: string): Promise<{ net: Net; adam: AdamState | null }> {
  try {
    return await loadNetUnchecked(dir);
  } catch (e) {
    if (e instanceof DataError) throw e;
    throw new DataError(
      `cannot load the network in ${dir}: ${
        (e as Error).message.split("\n")[0]
      }; if it is in the cache, \`deno task verify\` names the damaged entry and the next run rebuilds it`,
    );
  }
}

async function loadNetUnchecked(dir: string): Promise<{ net: Net; adam: AdamState | null }> {
  const spec = JSON.parse(await Deno.readTextFile(join(dir, "net.json")));
  const model = await tfl.loadLayersModel(fileLoadHandler(dir));
  const weights = model.getWeights();
  const layers = [];
  for (let i = 0; i < weights.length; i += 2) {
    layers.push({
      W: tf.variable(weights[i], true),
      b: tf.variable(weights[i + 1], true),
    });
  }
  model.dispose();
  const net: Net = {
    kind: spec.kind,
    layers,
    hiddenActivation: spec.hiddenActivation,
    outputActivation: spec.outputActivation,
    dropout: spec.dropout,
    // absent in nets saved before these knobs existed
    slope: spec.slope ?? LEAKY_RELU_SLOPE,
    pixelScale: spec.pixelScale ?? "unit",
  };
  let adam: AdamState | null = null;
  if (spec.adam) {
    const sizes = variablesOf(net).map((v) => v.size);
    const m = (await readNpyF32(join(dir, "adam_m.npy"))).data;
    const v = (await readNpyF32(join(dir, "adam_v.npy"))).data;
    adam = { t: spec.adam.t, m: split(m, sizes), v: split(v, sizes) };
  }
  return { net, adam };
}
