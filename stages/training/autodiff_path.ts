/**
 * The `autodiff` training path: each minibatch's loss built from tfjs ops, its gradients from
 * tfjs's tape, Adam applied by the optimizer's engine. It runs on every tfjs backend and for
 * every setting; the `direct` path replaces it where it can, with the same bits for the
 * lecture's settings (tests/dense_direct_test.ts).
 */
import * as tf from "@tensorflow/tfjs-core";
// tfjs-core alone registers no gradients; tfjs-layers' bundle registers all of them.
import "@tensorflow/tfjs-layers";
import { fitEpoch, gatherRows, trainStep } from "./fit.ts";
import { hingeLoss, leastSquaresLoss } from "./losses.ts";
import { forward, inferImages, meanProbability, variablesOf } from "./nets.ts";
import {
  answer,
  type Batch,
  type CounterfeiterFit,
  type FitResult,
  HostBatch,
  hostData,
  HostPath,
  type PoliceFit,
} from "./path.ts";

/** Training through tfjs's autodiff. */
export class AutodiffPath extends HostPath {
  readonly kind = "autodiff";

  generate(noise: Batch): Batch {
    const out = inferImages(this.gan.g, hostData(noise));
    return new HostBatch(out, out.length / noise.rows);
  }

  meanD(x: Batch): Promise<number> {
    return answer(() => meanProbability(this.gan.d, hostData(x)));
  }

  protected policeEpoch(
    x: Float32Array,
    y: Float32Array,
    dim: number,
    { batchSize, rateFactor }: Omit<PoliceFit, "tricks">,
  ): FitResult {
    const gan = this.gan, vars = variablesOf(gan.d);
    return fitEpoch(
      y.length,
      batchSize,
      gan.streams.shuffle,
      (rows) =>
        trainStep(gan.optD, vars, rateFactor, () => {
          const xb = gatherRows(x, dim, rows);
          const yb = tf.tensor2d(Float32Array.from(rows, (r) => y[r]), [rows.length, 1]);
          return gan.loss(forward(gan.d, xb, gan.streams.dropout), yb);
        }),
    );
  }

  protected counterfeiterEpoch(
    z: Float32Array,
    { batchSize, policeDropout, instanceNoise, rateFactor }: CounterfeiterFit,
  ): FitResult {
    const gan = this.gan, nd = gan.noiseDim, vars = variablesOf(gan.g);
    // the counterfeiter's own dropout (0 in the lecture: then no masks are drawn)
    const gDropout = gan.g.dropout > 0 ? gan.streams.dropout : null;
    const form = gan.counterfeiterLoss;
    return fitEpoch(
      z.length / nd,
      batchSize,
      gan.streams.shuffle,
      (rows) =>
        trainStep(gan.optG, vars, rateFactor, () => {
          let fake = forward(gan.g, gatherRows(z, nd, rows), gDropout);
          if (instanceNoise > 0) {
            const e = gan.streams.augment.normals(fake.size);
            fake = tf.add(fake, tf.mul(tf.tensor2d(e, fake.shape), instanceNoise));
          }
          const logits = forward(gan.d, fake, policeDropout ? gan.streams.dropout : null);
          if (form === "leastSquares") return leastSquaresLoss(logits);
          if (form === "hinge") return hingeLoss(logits);
          return gan.loss(logits, tf.ones([rows.length, 1]));
        }),
    );
  }
}
