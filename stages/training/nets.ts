/**
 * The two networks as plain variables and a forward function, so every random draw
 * (initial weights, dropout masks) comes from our seeded {@link Rng} and the police can
 * return logits. Saving and loading in the tfjs layers format is in `model_io.ts`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "@tensorflow/tfjs-backend-cpu";
 * import { counterfeiterSizes, initNet } from "./nets.ts";
 * import { Rng } from "../../pipeline/rng.ts";
 * const sizes = counterfeiterSizes(10, [8], 784);
 * const g = initNet({ kind: "counterfeiter", sizes, output: "linear" }, new Rng(1));
 * assert(g.layers.length === 2);
 * ```
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Activation, Config, PixelScale } from "../schema.ts";
import type { Rng } from "../../pipeline/rng.ts";
import { LEAKY_RELU_SLOPE } from "../vocabulary.ts";

/** One dense layer's parameters. */
export interface Dense {
  W: tf.Variable;
  b: tf.Variable;
}

/** A multilayer perceptron: dense layers, hidden activations, optional dropout. */
export interface Net {
  kind: "counterfeiter" | "police" | "classifier";
  layers: Dense[];
  hiddenActivation: Activation;
  outputActivation: Activation;
  dropout: number;
  /** Negative slope of the leakyRelu activation. */
  slope: number;
  /** The pixel scale of the images the net makes (counterfeiter) or reads (police). */
  pixelScale: PixelScale;
}

/** Layer sizes of the counterfeiter: noise -> hidden -> image. */
export function counterfeiterSizes(noiseDim: number, hidden: number[], imageDim: number): number[] {
  return [noiseDim, ...hidden, imageDim];
}

/** Layer sizes of the police: image -> hidden -> 1. */
export function policeSizes(imageDim: number, hidden: number[]): number[] {
  return [imageDim, ...hidden, 1];
}

/** A dense network's shape and settings. */
export interface NetSpec {
  kind: Net["kind"];
  /** Layer widths, input first. */
  sizes: number[];
  /** The hidden layers' activation (default relu). */
  hidden?: Activation;
  output: Activation;
  /** Dropout after each hidden layer, while training (default 0). */
  dropout?: number;
  /** The leakyRelu slope. */
  slope?: number;
  /** The pixel scale the net makes or reads images in. */
  pixelScale?: PixelScale;
}

/** Keras' Dense defaults: Glorot-uniform weights, zero bias, drawn from `rng`. */
export function initNet(
  { kind, sizes, hidden = "relu", output, dropout = 0, slope, pixelScale }: NetSpec,
  rng: Rng,
): Net {
  const layers: Dense[] = [];
  for (let i = 0; i + 1 < sizes.length; i++) {
    const [fanIn, fanOut] = [sizes[i], sizes[i + 1]];
    const limit = Math.sqrt(6 / (fanIn + fanOut));
    const w = rng.uniforms(fanIn * fanOut, -limit, limit);
    layers.push({
      W: tf.variable(tf.tensor2d(w, [fanIn, fanOut]), true),
      b: tf.variable(tf.zeros([fanOut]), true),
    });
  }
  return {
    kind,
    layers,
    hiddenActivation: hidden,
    outputActivation: output,
    dropout,
    slope: slope ?? LEAKY_RELU_SLOPE,
    pixelScale: pixelScale ?? "unit",
  };
}

/** The counterfeiter and police of a config, freshly initialised from the seed. */
export function initNets(
  cfg: { model: Config["model"] },
  imageDim: number,
  rngG: Rng,
  rngD: Rng,
): { g: Net; d: Net } {
  const m = cfg.model;
  const g = initNet({
    kind: "counterfeiter",
    sizes: counterfeiterSizes(m.noiseDim, m.counterfeiter.hidden, imageDim),
    hidden: m.counterfeiter.activation,
    output: m.counterfeiter.outputActivation,
    dropout: m.counterfeiter.dropout,
    slope: m.counterfeiter.leakySlope,
    pixelScale: m.pixelScale,
  }, rngG);
  const d = initNet({
    kind: "police",
    sizes: policeSizes(imageDim, m.police.hidden),
    hidden: m.police.activation,
    output: "sigmoid",
    dropout: m.police.dropout,
    slope: m.police.leakySlope,
    pixelScale: m.pixelScale,
  }, rngD);
  return { g, d };
}

/** Applies an activation by name. */
export function activate(x: tf.Tensor, a: Activation, slope = LEAKY_RELU_SLOPE): tf.Tensor {
  switch (a) {
    case "relu":
      return tf.relu(x);
    case "leakyRelu":
      return tf.leakyRelu(x, slope);
    case "elu":
      return tf.elu(x);
    case "tanh":
      return tf.tanh(x);
    case "sigmoid":
      return tf.sigmoid(x);
    case "linear":
      return x;
  }
}

/** A Keras-style dropout mask (keep with 1-rate, scaled by 1/(1-rate)) from `rng`. */
export function dropoutMask(rows: number, cols: number, rate: number, rng: Rng): tf.Tensor2D {
  const m = new Float32Array(rows * cols);
  const scale = 1 / (1 - rate);
  // uniform() >= rate, compared on the raw 32-bit draw (the same outcome, no division)
  const threshold = Math.ceil(rate * 4294967296);
  rng.fillMask(m, threshold, scale);
  return tf.tensor2d(m, [rows, cols]);
}

/**
 * Forward pass. For the police and the classifier it returns logits (the output activation is left off, since
 * the loss is computed from logits); `dropoutRng` turns dropout on, drawing masks from it.
 */
export function forward(
  net: Net,
  x: tf.Tensor2D,
  dropoutRng: Rng | null = null,
  upTo = net.layers.length,
): tf.Tensor2D {
  let h: tf.Tensor2D = x;
  const last = net.layers.length - 1;
  net.layers.slice(0, upTo).forEach((layer, i) => {
    if (i < last) {
      // fused matmul+bias(+relu): tfjs fuses it when no gradient is recorded (faster than
      // a linear fused op plus a separate relu under gradients, measured)
      const fusedRelu = net.hiddenActivation === "relu";
      h = tf.fused.matMul({
        a: h,
        b: layer.W,
        bias: layer.b,
        activation: fusedRelu ? "relu" : "linear",
      }) as tf.Tensor2D;
      if (!fusedRelu) h = activate(h, net.hiddenActivation, net.slope) as tf.Tensor2D;
      if (dropoutRng && net.dropout > 0) {
        h = tf.mul(h, dropoutMask(h.shape[0], h.shape[1], net.dropout, dropoutRng)) as tf.Tensor2D;
      }
    } else {
      h = tf.fused.matMul({ a: h, b: layer.W, bias: layer.b }) as tf.Tensor2D;
      if (net.kind === "counterfeiter") {
        h = activate(h, net.outputActivation, net.slope) as tf.Tensor2D;
      }
    }
  });
  return h;
}

/** Maps images from a net's pixel scale to [0,1] (a copy; unit-scale input is returned as is). */
export function toUnitScale(x: Float32Array, scale: PixelScale): Float32Array {
  if (scale === "unit") return x;
  return x.map((v) => (v + 1) * 0.5);
}

/** Maps [0,1] images to a pixel scale (a copy; unit scale returns the input). */
export function fromUnitScale(x: Float32Array, scale: PixelScale): Float32Array {
  if (scale === "unit") return x;
  return x.map((v) => v * 2 - 1);
}

/** The penultimate layer's activations (the features the Frechet distance compares). */
export function features(net: Net, x: tf.Tensor2D): tf.Tensor2D {
  return forward(net, x, null, net.layers.length - 1);
}

/** Every variable of a net, in layer order (W, b, W, b, ...). */
export function variablesOf(net: Net): tf.Variable[] {
  return net.layers.flatMap((l) => [l.W, l.b]);
}

/** Number of parameters. */
export function paramCount(net: Net): number {
  return variablesOf(net).reduce((n, v) => n + v.size, 0);
}

/** Frees a net's variables. */
export function disposeNet(net: Net): void {
  for (const v of variablesOf(net)) v.dispose();
}

/** Images clipped to [0,1] (what every metric and sample sees), and the share that was outside. */
export function clip01(x: Float32Array): { clipped: Float32Array; outside: number } {
  const c = new Float32Array(x.length);
  let outside = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (v < 0 || v > 1) outside++;
    c[i] = v < 0 ? 0 : v > 1 ? 1 : v;
  }
  return { clipped: c, outside: outside / x.length };
}

/** The counterfeiter's images from noise rows, in inference mode, through tfjs. */
export function inferImages(g: Net, noise: Float32Array): Float32Array {
  const nd = g.layers[0].W.shape[0];
  // tidy must return the tensor, not its data: it walks a returned array element by element
  const out = tf.tidy(() => forward(g, tf.tensor2d(noise, [noise.length / nd, nd])));
  const data = (out.dataSync() as Float32Array).slice();
  out.dispose();
  return data;
}

/** The police's mean probability over rows of images, in inference mode, through tfjs. */
export function meanProbability(d: Net, x: Float32Array): number {
  const dim = d.layers[0].W.shape[0];
  return tf.tidy(() =>
    tf.mean(tf.sigmoid(forward(d, tf.tensor2d(x, [x.length / dim, dim])))).dataSync()[0]
  );
}
