/**
 * A {@link Net} as an ONNX model (opset 13), written with npm's `onnx-proto` (the ONNX
 * protobuf schema compiled by protobufjs): one Gemm per dense layer and the layer's
 * activation; dropout is left out, as in inference. Input `noise` (counterfeiter) or `images`
 * (police), batch dimension free; output as the tfjs layers model gives it (the
 * counterfeiter's pixel scale and the police's probability are in the model's metadata).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import "@tensorflow/tfjs-backend-cpu";
 * import { netToOnnx, ONNX_IO } from "./onnx.ts";
 * import { Rng } from "../../pipeline/rng.ts";
 * import { initNet } from "../training/nets.ts";
 * const net = initNet({ kind: "police", sizes: [4, 3, 1], output: "sigmoid" }, new Rng(1));
 * const bytes = netToOnnx(net, { source: "demo" });
 * assert(bytes.length > 4 * (4 * 3 + 3 + 3 + 1), "the weights are in the file");
 * assert.equal(ONNX_IO.police.input, "images");
 * ```
 */
import onnxProto from "onnx-proto";
import type { Activation } from "../schema.ts";
import type { Net } from "../training/nets.ts";

const { onnx } = onnxProto;

/** Each net's input and output names in the exported graph. */
export const ONNX_IO = {
  counterfeiter: { input: "noise", output: "images" },
  police: { input: "images", output: "probability" },
  classifier: { input: "images", output: "classes" },
} as const;

/** The ONNX node of an activation (none for linear). */
function activationNode(act: Activation | "softmax", slope: number, input: string, output: string) {
  const op: Record<Activation | "softmax", string | null> = {
    relu: "Relu",
    leakyRelu: "LeakyRelu",
    elu: "Elu",
    tanh: "Tanh",
    sigmoid: "Sigmoid",
    softmax: "Softmax",
    linear: null,
  };
  const opType = op[act];
  if (!opType) return null;
  const attribute = act === "leakyRelu"
    ? [{ name: "alpha", type: onnx.AttributeProto.AttributeType.FLOAT, f: slope }]
    : act === "elu"
    ? [{ name: "alpha", type: onnx.AttributeProto.AttributeType.FLOAT, f: 1 }]
    : [];
  return {
    opType,
    input: [input],
    output: [output],
    name: `${opType.toLowerCase()}_${output}`,
    attribute,
  };
}

/** A float tensor initializer. */
function initializer(name: string, dims: number[], data: Float32Array) {
  const bytes = new Uint8Array(
    data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength),
  );
  return { name, dims, dataType: onnx.TensorProto.DataType.FLOAT, rawData: bytes };
}

/** A float matrix value's type with a free batch dimension. */
const matrixType = (name: string, width: number) => ({
  name,
  type: {
    tensorType: {
      elemType: onnx.TensorProto.DataType.FLOAT,
      shape: { dim: [{ dimParam: "batch" }, { dimValue: width }] },
    },
  },
});

/** The activation of layer `i` of `net`, as the tfjs layers model has it. */
export function layerActivation(net: Net, i: number): Activation | "softmax" {
  if (i < net.layers.length - 1) return net.hiddenActivation;
  if (net.kind === "police") return "sigmoid";
  if (net.kind === "classifier") return "softmax";
  return net.outputActivation;
}

/** Options of {@link netToOnnx}. */
export interface OnnxOptions {
  /**
   * The net's own inputs and outputs, in its training pixel scale and not clipped; by default
   * images go in and come out on [0,1], the counterfeiter's clipped.
   */
  raw?: boolean;
}

/** A node of one operator. */
function step(opType: string, input: string[], output: string) {
  return { opType, input, output: [output], name: output };
}

/**
 * The ONNX model's bytes; `metadata` goes into its metadata_props beside the net's facts.
 * Images are on [0,1] (white digits on black) unless `raw`.
 */
export function netToOnnx(
  net: Net,
  metadata: Record<string, string> = {},
  { raw = false }: OnnxOptions = {},
): Uint8Array {
  const io = ONNX_IO[net.kind];
  const nodes: onnxProto.onnx.INodeProto[] = [];
  const inits = [];
  let x: string = io.input;
  const last = net.layers.length - 1;
  const symmetric = net.pixelScale === "symmetric";
  const scalar = (name: string, v: number) => {
    inits.push(initializer(name, [], new Float32Array([v])));
    return name;
  };
  // pixels on [0,1] in and out unless raw: the police reads [0,1] images as 2x - 1 ...
  if (!raw && net.kind === "police" && symmetric) {
    nodes.push(step("Mul", [x, scalar("two", 2)], "images_x2"));
    nodes.push(step("Sub", ["images_x2", scalar("one", 1)], "images_training"));
    x = "images_training";
  }
  const unitOut = !raw && net.kind === "counterfeiter";
  for (const [i, layer] of net.layers.entries()) {
    const [fanIn, units] = layer.W.shape as [number, number];
    inits.push(initializer(`W${i}`, [fanIn, units], layer.W.dataSync() as Float32Array));
    inits.push(initializer(`b${i}`, [units], layer.b.dataSync() as Float32Array));
    const act = layerActivation(net, i);
    const linearOut = i === last && act === "linear" && !unitOut ? io.output : `dense${i}`;
    nodes.push({
      opType: "Gemm",
      input: [x, `W${i}`, `b${i}`],
      output: [linearOut],
      name: `gemm${i}`,
    });
    x = linearOut;
    const node = activationNode(act, net.slope, x, i === last && !unitOut ? io.output : `act${i}`);
    if (node) {
      nodes.push(node);
      x = node.output[0];
    }
  }
  // ... and the counterfeiter's images come out on [0,1], clipped, as every image file here
  if (unitOut) {
    if (symmetric) {
      nodes.push(step("Add", [x, scalar("one_out", 1)], "images_plus1"));
      nodes.push(step("Mul", ["images_plus1", scalar("half", 0.5)], "images_unit"));
      x = "images_unit";
    }
    nodes.push(step("Clip", [x, scalar("zero", 0), scalar("one_max", 1)], io.output));
  }
  const facts: Record<string, string> = {
    net: net.kind,
    pixelScale: net.pixelScale,
    pixels: !raw
      ? "[0,1], white digits on black; the counterfeiter's clipped to it"
      : net.pixelScale === "unit"
      ? "raw: the training scale [0,1], not clipped"
      : "raw: the training scale [-1,1], not clipped: (x + 1) / 2 gives [0,1]",
    ...metadata,
  };
  const model = onnx.ModelProto.create({
    irVersion: 7,
    opsetImport: [{ domain: "", version: 13 }],
    producerName: "gan-pipeline",
    docString: `the ${net.kind} of a gan-pipeline run`,
    graph: {
      name: net.kind,
      node: nodes,
      initializer: inits,
      input: [matrixType(io.input, net.layers[0].W.shape[0] as number)],
      output: [matrixType(io.output, net.layers[last].W.shape[1] as number)],
    },
    metadataProps: Object.entries(facts).map(([key, value]) => ({ key, value })),
  });
  return onnx.ModelProto.encode(model).finish();
}
