/**
 * The evaluation metrics, on plain arrays so each can be checked by hand:
 * - Frechet distance between Gaussians fitted to two feature sets (the MNIST analogue of FID:
 *   Heusel et al. 2017, computed on our classifier's penultimate features as TF-GAN's MNIST
 *   example does): `|mu1-mu2|^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2))`.
 * - The class histogram of predicted labels, classes covered, KL divergence to uniform.
 * - The classifier score (the Inception Score analogue, Salimans et al. 2016):
 *   `exp(E_x KL(p(y|x) || p(y)))`, from 1 (one class, or no confidence) to the class count.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { klToUniform } from "./metrics.ts";
 * assert(Math.abs(klToUniform([5, 5, 0, 0]) - Math.log(2)) < 1e-12);
 * ```
 */

/** Mean vector and covariance matrix (unbiased) of `n` rows of `d` features. */
export function meanCov(
  x: Float32Array | Float64Array,
  n: number,
  d: number,
): { mean: Float64Array; cov: Float64Array } {
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += x[i * d + j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  const cov = new Float64Array(d * d);
  const row = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) row[j] = x[i * d + j] - mean[j];
    for (let a = 0; a < d; a++) {
      const ra = row[a];
      if (ra === 0) continue;
      for (let b = a; b < d; b++) cov[a * d + b] += ra * row[b];
    }
  }
  for (let a = 0; a < d; a++) {
    for (let b = a; b < d; b++) {
      const v = cov[a * d + b] / Math.max(1, n - 1);
      cov[a * d + b] = v;
      cov[b * d + a] = v;
    }
  }
  return { mean, cov };
}

/** Eigenvalues and eigenvectors (columns) of a symmetric matrix, by cyclic Jacobi rotations. */
export function symmetricEigen(
  m: Float64Array,
  d: number,
): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(m);
  const v = new Float64Array(d * d);
  for (let i = 0; i < d; i++) v[i * d + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0, diag = 0;
    for (let p = 0; p < d; p++) {
      diag += a[p * d + p] ** 2;
      for (let q = p + 1; q < d; q++) off += a[p * d + q] ** 2;
    }
    if (off <= 1e-22 * Math.max(diag, 1e-300)) break;
    for (let p = 0; p < d; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = a[p * d + q];
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * d + q] - a[p * d + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < d; k++) {
          const akp = a[k * d + p], akq = a[k * d + q];
          a[k * d + p] = c * akp - s * akq;
          a[k * d + q] = s * akp + c * akq;
        }
        for (let k = 0; k < d; k++) {
          const apk = a[p * d + k], aqk = a[q * d + k];
          a[p * d + k] = c * apk - s * aqk;
          a[q * d + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < d; k++) {
          const vkp = v[k * d + p], vkq = v[k * d + q];
          v[k * d + p] = c * vkp - s * vkq;
          v[k * d + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(d);
  for (let i = 0; i < d; i++) values[i] = a[i * d + i];
  return { values, vectors: v };
}

function matmul(a: Float64Array, b: Float64Array, d: number): Float64Array {
  const c = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let k = 0; k < d; k++) {
      const aik = a[i * d + k];
      if (aik === 0) continue;
      for (let j = 0; j < d; j++) c[i * d + j] += aik * b[k * d + j];
    }
  }
  return c;
}

/** Square root of a symmetric positive semi-definite matrix (negative eigenvalues clipped). */
export function sqrtPsd(m: Float64Array, d: number): Float64Array {
  const { values, vectors } = symmetricEigen(m, d);
  const out = new Float64Array(d * d);
  for (let k = 0; k < d; k++) {
    const s = Math.sqrt(Math.max(values[k], 0));
    if (s === 0) continue;
    for (let i = 0; i < d; i++) {
      const vik = vectors[i * d + k] * s;
      for (let j = 0; j < d; j++) out[i * d + j] += vik * vectors[j * d + k];
    }
  }
  return out;
}

/** Frechet distance between N(mu1, C1) and N(mu2, C2). */
export function frechetFromStats(
  mu1: Float64Array,
  c1: Float64Array,
  mu2: Float64Array,
  c2: Float64Array,
): number {
  const d = mu1.length;
  let diff = 0;
  for (let i = 0; i < d; i++) diff += (mu1[i] - mu2[i]) ** 2;
  // Tr((C1 C2)^(1/2)) = Tr((S C2 S)^(1/2)) with S = C1^(1/2): a symmetric PSD product.
  const s = sqrtPsd(c1, d);
  const inner = matmul(matmul(s, c2, d), s, d);
  for (let i = 0; i < d; i++) {
    for (let j = i + 1; j < d; j++) {
      const avg = (inner[i * d + j] + inner[j * d + i]) / 2;
      inner[i * d + j] = avg;
      inner[j * d + i] = avg;
    }
  }
  const { values } = symmetricEigen(inner, d);
  let trSqrt = 0;
  for (const v of values) trSqrt += Math.sqrt(Math.max(v, 0));
  let tr = 0;
  for (let i = 0; i < d; i++) tr += c1[i * d + i] + c2[i * d + i];
  return Math.max(0, diff + tr - 2 * trSqrt);
}

/** Frechet distance between two feature sets of `d` columns. */
export function frechetDistance(
  a: Float32Array,
  na: number,
  b: Float32Array,
  nb: number,
  d: number,
): number {
  const sa = meanCov(a, na, d), sb = meanCov(b, nb, d);
  return frechetFromStats(sa.mean, sa.cov, sb.mean, sb.cov);
}

/** Counts of the argmax class of each row of `probs` (n x k). */
export function classHistogram(probs: Float32Array, n: number, k: number): number[] {
  const h = new Array(k).fill(0);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (probs[i * k + j] > probs[i * k + best]) best = j;
    h[best]++;
  }
  return h;
}

/** KL divergence (nats) of a histogram's distribution to the uniform one over its bins. */
export function klToUniform(hist: number[]): number {
  const total = hist.reduce((a, b) => a + b, 0);
  const k = hist.length;
  let kl = 0;
  for (const c of hist) if (c > 0) kl += (c / total) * Math.log((c / total) * k);
  return kl;
}

/**
 * Classes covered: those holding at least `minShare` of the samples (default 1%, a tenth of a
 * class's uniform share: far above what classifier noise alone puts in a missing class, far
 * below what a real but rare mode holds).
 */
export function classesCovered(hist: number[], minShare = 0.01): number {
  const total = hist.reduce((a, b) => a + b, 0);
  return hist.filter((c) => c / total >= minShare).length;
}

/** exp(E_x KL(p(y|x) || p(y))) over rows of `probs` (n x k). */
export function classifierScore(probs: Float32Array, n: number, k: number): number {
  const py = new Float64Array(k);
  for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) py[j] += probs[i * k + j] / n;
  let kl = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < k; j++) {
      const p = probs[i * k + j];
      if (p > 0) kl += p * (Math.log(p) - Math.log(py[j]));
    }
  }
  return Math.exp(kl / n);
}
