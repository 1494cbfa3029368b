/**
 * A small, fast, seedable random number generator (sfc32 seeded through splitmix32), so
 * that every random draw in the pipeline (weights, noise, shuffles, dropout masks, subsets)
 * comes from the config's seed and repeats bit for bit. `Math.random` is never used.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Rng } from "./rng.ts";
 * const a = new Rng(7), b = new Rng(7);
 * assert(a.uniform() === b.uniform());
 * ```
 */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  #spare: number | null = null;

  constructor(seed: number, stream = 0) {
    let s = (Math.trunc(seed) ^ Math.imul(stream + 1, 0x9e3779b9)) >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#a = next();
    this.#b = next();
    this.#c = next();
    this.#d = next();
    for (let i = 0; i < 12; i++) this.nextU32();
  }

  /** A uniform 32-bit unsigned integer. */
  nextU32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t;
  }

  /**
   * Fills `out` with `scale` where the next 32-bit draw is >= `threshold`, else 0: a dropout
   * mask. Same draws as calling {@link Rng.nextU32} once per element, with the generator's
   * state in locals (a method call per element costs several times more).
   */
  fillMask(out: Float32Array, threshold: number, scale: number): void {
    let a = this.#a, b = this.#b, c = this.#c, d = this.#d;
    for (let i = 0; i < out.length; i++) {
      const t = (((a + b) >>> 0) + d) >>> 0;
      d = (d + 1) >>> 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) >>> 0;
      c = ((c << 21) | (c >>> 11)) >>> 0;
      c = (c + t) >>> 0;
      out[i] = scale * +(t >= threshold); // branch-free: a random branch mispredicts often
    }
    this.#a = a;
    this.#b = b;
    this.#c = c;
    this.#d = d;
  }

  /**
   * The same draws as {@link Rng.fillMask} over `count` elements, as bits: bit k of `out`
   * (word k / 32, bit k % 32) is set where draw k is >= `threshold` (a device reads 32 times
   * fewer bytes than a float mask).
   */
  fillMaskBits(out: Uint32Array, count: number, threshold: number): void {
    let a = this.#a, b = this.#b, c = this.#c, d = this.#d;
    out.fill(0, 0, Math.ceil(count / 32));
    for (let i = 0; i < count; i++) {
      const t = (((a + b) >>> 0) + d) >>> 0;
      d = (d + 1) >>> 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) >>> 0;
      c = ((c << 21) | (c >>> 11)) >>> 0;
      c = (c + t) >>> 0;
      out[i >>> 5] |= +(t >= threshold) << (i & 31);
    }
    this.#a = a;
    this.#b = b;
    this.#c = c;
    this.#d = d;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box-Muller, pairs cached). */
  normal(): number {
    if (this.#spare !== null) {
      const s = this.#spare;
      this.#spare = null;
      return s;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.#spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** A Float32Array of n standard normals. */
  normals(n: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal();
    return out;
  }

  /** A Float32Array of n uniforms in [lo, hi). */
  uniforms(n: number, lo = 0, hi = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * this.uniform();
    return out;
  }

  /** A random permutation of 0..n-1 (Fisher-Yates). */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    return p;
  }

  /** The generator's state, for checkpoints. */
  state(): (number | null)[] {
    return [this.#a, this.#b, this.#c, this.#d, this.#spare];
  }

  /** Restores a state taken with {@link Rng.state}. */
  static fromState(st: (number | null)[]): Rng {
    const r = new Rng(0);
    // signed, as nextU32 leaves it: a restored stream never drawn from saves the same state
    r.#a = Number(st[0]) | 0;
    r.#b = Number(st[1]) >>> 0;
    r.#c = Number(st[2]) >>> 0;
    r.#d = Number(st[3]) >>> 0;
    r.#spare = st[4] ?? null;
    return r;
  }
}
