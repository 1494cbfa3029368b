/** The conv evaluator's hand-written passes against tfjs's conv2d, maxPool and autodiff. */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-layers"; // registers the gradients of every op
import { Rng } from "../pipeline/rng.ts";
import { sgemmJs } from "../stages/backends/blas.ts";
import { ConvNet } from "../stages/evaluation/conv_net.ts";

const close = (a: Float32Array, b: Float32Array, what: string, tol = 2e-4) => {
  assert.equal(a.length, b.length, what);
  const scale = Math.max(1e-3, ...Array.from(b, Math.abs));
  const worst = a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
  assert(worst <= tol * scale, `${what}: max |diff| ${worst} (scale ${scale})`);
};

Deno.test("the conv evaluator's forward pass and gradients are tfjs's, layer by layer", async () => {
  await tf.setBackend("cpu");
  const spec = { side: 14, filters: [3, 4], kernel: 3, dense: 6, classes: 5 };
  const net = ConvNet.init(spec, new Rng(7), sgemmJs);
  // biases too, so their gradients are tested with something to move
  net.layers.forEach((l, i) => l.b.set(new Rng(20 + i).uniforms(l.b.length, -0.1, 0.1)));
  const n = 3;
  const x = new Rng(8).uniforms(n * 14 * 14, 0, 1);
  const labels = Uint8Array.from([0, 3, 4]);
  const trace = net.forward(x, n);
  const { loss, grads } = net.gradients(trace, labels);

  const vars = net.layers.map((l) => [tf.variable(tf.tensor(l.W)), tf.variable(tf.tensor(l.b))]);
  const model = () => {
    let a: tf.Tensor = tf.tensor4d(x, [n, 14, 14, 1]);
    spec.filters.forEach((cout, i) => {
      const cin = i === 0 ? 1 : spec.filters[i - 1];
      const w = tf.reshape(vars[i][0], [3, 3, cin, cout]) as tf.Tensor4D;
      a = tf.maxPool(
        tf.relu(tf.add(tf.conv2d(a as tf.Tensor4D, w, 1, "valid"), vars[i][1])),
        2,
        2,
        "valid",
      );
    });
    const nc = spec.filters.length;
    const flat = tf.reshape(a, [n, -1]) as tf.Tensor2D;
    const hidden = tf.relu(
      tf.add(tf.matMul(flat, tf.reshape(vars[nc][0], [flat.shape[1], 6])), vars[nc][1]),
    );
    return tf.add(
      tf.matMul(hidden, tf.reshape(vars[nc + 1][0], [6, 5])),
      vars[nc + 1][1],
    ) as tf.Tensor2D;
  };
  const logits = model();
  close(trace.logits, logits.dataSync() as Float32Array, "logits");
  const onehot = tf.oneHot(tf.tensor1d(labels, "int32"), 5);
  const f = () => tf.losses.softmaxCrossEntropy(onehot, model()) as tf.Scalar;
  const { value, grads: tg } = tf.variableGrads(f, vars.flat());
  assert(Math.abs(loss - value.dataSync()[0]) < 1e-5, `loss ${loss} vs ${value.dataSync()[0]}`);
  vars.forEach(([w, b], i) => {
    close(grads[i].W, tg[w.name].dataSync() as Float32Array, `dW${i}`);
    close(grads[i].b, tg[b.name].dataSync() as Float32Array, `db${i}`);
  });
});
