import assert from "node:assert/strict";
import { Rng } from "../pipeline/rng.ts";

Deno.test("the generator repeats from a seed and a saved state, and streams differ", () => {
  const a = new Rng(42), b = new Rng(42);
  const xs = Array.from({ length: 100 }, () => a.uniform());
  assert.deepEqual(xs, Array.from({ length: 100 }, () => b.uniform()));
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  assert.notDeepEqual(new Rng(42, 1).uniform(), new Rng(42, 2).uniform());
  a.normal();
  const st = a.state();
  const c = Rng.fromState(JSON.parse(JSON.stringify(st)));
  assert.deepEqual([a.normal(), a.normal(), a.uniform()], [c.normal(), c.normal(), c.uniform()]);
});

Deno.test("fillMask draws exactly what one nextU32 per element would", () => {
  const a = new Rng(5), b = new Rng(5);
  const threshold = Math.ceil(0.3 * 2 ** 32);
  const m = new Float32Array(10001);
  a.fillMask(m, threshold, 1 / 0.7);
  for (let i = 0; i < m.length; i++) {
    assert.equal(m[i], b.nextU32() >= threshold ? Math.fround(1 / 0.7) : 0);
  }
  assert.equal(a.nextU32(), b.nextU32());
  const kept = m.filter((v) => v > 0).length / m.length;
  assert.ok(Math.abs(kept - 0.7) < 0.02, `keep rate ${kept}`);
});

Deno.test("fillMaskBits sets the bits fillMask would make nonzero, with the same draws", () => {
  const a = new Rng(9), b = new Rng(9);
  const threshold = Math.ceil(0.3 * 2 ** 32);
  const count = 1000 + 7; // a partial last word
  const bits = new Uint32Array(Math.ceil(count / 32)).fill(0xffffffff);
  a.fillMaskBits(bits, count, threshold);
  const m = new Float32Array(count);
  b.fillMask(m, threshold, 2);
  for (let i = 0; i < count; i++) assert.equal((bits[i >>> 5] >>> (i & 31)) & 1, +(m[i] > 0));
  assert.equal(bits.at(-1)! >>> (count & 31), 0, "bits past the count stay clear");
  assert.equal(a.nextU32(), b.nextU32());
});

Deno.test("permutations are permutations; normals have mean 0 and variance 1", () => {
  const p = new Rng(1).permutation(1000);
  assert.deepEqual([...p].sort((x, y) => x - y), Array.from({ length: 1000 }, (_, i) => i));
  const z = new Rng(2).normals(100000);
  const mean = z.reduce((s, v) => s + v, 0) / z.length;
  const variance = z.reduce((s, v) => s + (v - mean) ** 2, 0) / z.length;
  assert.ok(Math.abs(mean) < 0.01 && Math.abs(variance - 1) < 0.02, `${mean} ${variance}`);
});
