/**
 * The evaluator classifier as the evaluate stage uses it, whichever kind was trained: the MLP
 * (tfjs layers format, `classifier/model.json`) or the conv net (`classifier/conv.json` and its
 * parameters as `.npy`). Both give penultimate features (Frechet distance) and class
 * probabilities; each states the multiple of the real-vs-real Frechet floor its goal mark
 * allows (its features see generated digits differently: see docs/metrics.md).
 */
import * as tf from "@tensorflow/tfjs-core";
import { join } from "node:path";
import type { Sgemm } from "../backends/blas.ts";
import { loadNet } from "../formats/model_io.ts";
import { readNpyF32, writeNpy } from "../formats/npy.ts";
import { disposeNet, features, type Net } from "../training/nets.ts";
import { predictProbs } from "./classifier.ts";
import { ConvNet, type ConvSpec } from "./conv_net.ts";

/** A trained classifier that scores images. */
export interface Scorer {
  kind: "mlp" | "conv";
  featureDim: number;
  /** The goal mark's Frechet allowance, as a multiple of the real-vs-real floor. */
  frechetFactor: number;
  features(x: Float32Array, n: number): Float32Array;
  probabilities(x: Float32Array, n: number): Float32Array;
  dispose(): void;
}

/** The goal's Frechet allowance per evaluator kind (see docs/metrics.md). */
export const FRECHET_FACTOR = { mlp: 3, conv: 9 } as const;

function mlpScorer(net: Net): Scorer {
  const dim = net.layers[0].W.shape[0] as number;
  return {
    kind: "mlp",
    featureDim: net.layers.at(-1)!.W.shape[0] as number,
    frechetFactor: FRECHET_FACTOR.mlp,
    features: (x, n) => {
      const t = tf.tidy(() => features(net, tf.tensor2d(x, [n, dim])));
      const out = (t.dataSync() as Float32Array).slice();
      t.dispose();
      return out;
    },
    probabilities: (x) => predictProbs(net, x, dim),
    dispose: () => disposeNet(net),
  };
}

function convScorer(net: ConvNet): Scorer {
  return {
    kind: "conv",
    featureDim: net.spec.dense,
    frechetFactor: FRECHET_FACTOR.conv,
    features: (x, n) => net.features(x, n),
    probabilities: (x, n) => net.probabilities(x, n),
    dispose: () => {},
  };
}

/** Saves a conv net: `conv.json` (its shape) and `params.npy` (every layer, concatenated). */
export async function saveConv(dir: string, net: ConvNet): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const sizes = net.layers.flatMap((l) => [l.W.length, l.b.length]);
  const all = new Float32Array(sizes.reduce((a, b) => a + b, 0));
  let at = 0;
  for (const l of net.layers) {
    for (const a of [l.W, l.b]) {
      all.set(a, at);
      at += a.length;
    }
  }
  await writeNpy(join(dir, "params.npy"), all, [all.length]);
  await Deno.writeTextFile(
    join(dir, "conv.json"),
    JSON.stringify({ kind: "conv", spec: net.spec, sizes }, null, 2) + "\n",
  );
}

/** Loads the classifier a evaluator entry holds (`dir`: its `classifier/` folder). */
export async function loadScorer(dir: string, sgemm: Sgemm): Promise<Scorer> {
  let conv: { spec: ConvSpec; sizes: number[] } | null = null;
  try {
    conv = JSON.parse(await Deno.readTextFile(join(dir, "conv.json")));
  } catch {
    // the MLP
  }
  if (!conv) return mlpScorer((await loadNet(dir)).net);
  const all = (await readNpyF32(join(dir, "params.npy"))).data;
  const layers = [];
  let at = 0;
  for (let i = 0; i < conv.sizes.length; i += 2) {
    const W = all.slice(at, at + conv.sizes[i]);
    at += conv.sizes[i];
    const b = all.slice(at, at + conv.sizes[i + 1]);
    at += conv.sizes[i + 1];
    layers.push({ W, b });
  }
  return convScorer(new ConvNet(conv.spec, layers, sgemm));
}
