/**
 * The `direct` training path: the passes of `dense_direct.ts` over BLAS, gradients written
 * straight into the SIMD Adam's buffers, no tensors in between. It needs fast-cpu with BLAS,
 * the SIMD optimizer and settings {@link directSupported} covers, for both nets;
 * {@link directUnavailable} says why not where it cannot run.
 */
import * as tf from "@tensorflow/tfjs-core";
import { FAST_CPU, fastCpuSgemm } from "../backends/fast_cpu.ts";
import type { Adam } from "./adam.ts";
import {
  bceLogitsAndGrad,
  counterfeiterLossAndGrad,
  DenseStack,
  directSupported,
  meanSigmoid,
} from "./dense_direct.ts";
import { copyRows, fitEpoch } from "./fit.ts";
import type { LossForm } from "./losses.ts";
import type { Net } from "./nets.ts";
import {
  addNoise,
  answer,
  type Batch,
  type CounterfeiterFit,
  type FitResult,
  type GanCore,
  HostBatch,
  hostData,
  HostPath,
  type PoliceFit,
} from "./path.ts";

/** Why the direct path cannot train these nets (null: it can). */
export function directUnavailable(
  core: Pick<GanCore, "g" | "d" | "optG" | "optD">,
  lossForm: LossForm,
): string | null {
  if (tf.getBackend() !== FAST_CPU) return `the backend is ${tf.getBackend()}, not ${FAST_CPU}`;
  if (!fastCpuSgemm()) return "no BLAS library was loaded";
  for (const [net, opt] of [[core.g, core.optG], [core.d, core.optD]] as const) {
    if (!opt.engine.buffers) return `the ${net.kind}'s optimizer keeps no buffers (no SIMD)`;
    // the police's forward returns logits: its output activation is not applied
    const output = net.kind === "counterfeiter" ? net.outputActivation : "linear";
    if (!directSupported(net.hiddenActivation, output, lossForm)) {
      return `the ${net.kind}'s ${net.hiddenActivation}/${output} layers with the ${lossForm} loss`;
    }
  }
  return null;
}

/** A net's passes over the live parameters in its optimizer's memory. */
function stackOf(net: Net, opt: Adam): DenseStack {
  const params = opt.engine.buffers!.params;
  return new DenseStack(
    net,
    fastCpuSgemm()!,
    net.layers.map((_, i) => ({ W: params[2 * i], b: params[2 * i + 1] })),
  );
}

/** Training through hand-written passes (call {@link directUnavailable} first). */
export class DirectPath extends HostPath {
  readonly kind = "direct";
  readonly #g: DenseStack;
  readonly #d: DenseStack;

  constructor(gan: GanCore) {
    super(gan);
    this.#g = stackOf(gan.g, gan.optG);
    this.#d = stackOf(gan.d, gan.optD);
  }

  generate(noise: Batch): Batch {
    const out = this.#g.infer(hostData(noise), noise.rows).slice();
    return new HostBatch(out, out.length / noise.rows);
  }

  meanD(x: Batch): Promise<number> {
    return answer(() => meanSigmoid(this.#d.infer(hostData(x), x.rows), x.rows));
  }

  protected policeEpoch(
    x: Float32Array,
    y: Float32Array,
    dim: number,
    { batchSize, rateFactor }: Omit<PoliceFit, "tricks">,
  ): FitResult {
    const gan = this.gan, stack = this.#d, grads = gan.optD.engine.buffers!.grads;
    const xb = new Float32Array(batchSize * dim), yb = new Float32Array(batchSize);
    const dl = new Float32Array(batchSize);
    return fitEpoch(y.length, batchSize, gan.streams.shuffle, (rows) => {
      const n = rows.length;
      copyRows(x, dim, rows, xb);
      for (let r = 0; r < n; r++) yb[r] = y[rows[r]];
      const logits = stack.forward(xb, n, gan.streams.dropout);
      const loss = bceLogitsAndGrad(logits, yb, n, dl);
      stack.backward(dl, n, grads, null);
      gan.optD.applyBuffered(rateFactor);
      return loss;
    });
  }

  protected counterfeiterEpoch(
    z: Float32Array,
    { batchSize, policeDropout, instanceNoise, rateFactor }: CounterfeiterFit,
  ): FitResult {
    const gan = this.gan, nd = gan.noiseDim, [g, d] = [this.#g, this.#d];
    // the counterfeiter's own dropout (0 in the lecture: then no masks are drawn)
    const gDropout = gan.g.dropout > 0 ? gan.streams.dropout : null;
    const form = gan.counterfeiterLoss;
    const grads = gan.optG.engine.buffers!.grads;
    const dim = gan.d.layers[0].W.shape[0];
    const zb = new Float32Array(batchSize * nd), dl = new Float32Array(batchSize);
    const dFake = new Float32Array(batchSize * dim);
    const noisy = instanceNoise > 0 ? new Float32Array(batchSize * dim) : null;
    return fitEpoch(z.length / nd, batchSize, gan.streams.shuffle, (rows) => {
      const b = rows.length;
      copyRows(z, nd, rows, zb);
      let fake = g.forward(zb, b, gDropout);
      if (noisy) {
        const v = noisy.subarray(0, b * dim);
        v.set(fake.subarray(0, b * dim));
        addNoise(v, instanceNoise, gan.streams.augment);
        fake = v;
      }
      const logits = d.forward(fake, b, policeDropout ? gan.streams.dropout : null);
      const loss = form === "bce"
        ? bceLogitsAndGrad(logits, null, b, dl)
        : counterfeiterLossAndGrad(form, logits, b, dl);
      d.backward(dl, b, null, dFake);
      g.backward(dFake, b, grads, null);
      gan.optG.applyBuffered(rateFactor);
      return loss;
    });
  }
}
