/**
 * Adam's memory traffic for `deno task bench`: the bytes one lecture iteration's Adam steps
 * move, and the rate the SIMD kernel reaches on them alone (one thread and two, in the
 * loop's order of steps) beside a plain copy on one thread, as this machine's bandwidth
 * yardsticks for the rate Adam reaches inside the loop.
 */
import { sharedModule, SimdAdamArena } from "../backends/adam_simd.ts";
import { adamHelper } from "../backends/adam_threads.ts";
import { Rng } from "../../pipeline/rng.ts";

/** Bytes one Adam step moves per parameter: p, m, v and g read, p, m, v written (float32). */
export const ADAM_BYTES_PER_PARAM = 28;

/** The variable sizes of a dense stack of these widths (W then b per layer). */
export function stackSizes(widths: number[]): number[] {
  return widths.slice(1).flatMap((n, i) => [widths[i] * n, n]);
}

/** Adam steps of one lecture iteration: the police's on 2 x batch rows, the counterfeiter's. */
export function adamSteps(
  batch: number,
  fitBatch: number,
): { police: number; counterfeiter: number } {
  return { police: Math.ceil((2 * batch) / fitBatch), counterfeiter: Math.ceil(batch / fitBatch) };
}

/** Bytes Adam moves in one lecture iteration. */
export function adamBytesPerIteration(
  g: number[],
  d: number[],
  batch: number,
  fitBatch: number,
): number {
  const sum = (s: number[]) => s.reduce((a, b) => a + b, 0);
  const steps = adamSteps(batch, fitBatch);
  return ADAM_BYTES_PER_PARAM *
    (steps.police * sum(stackSizes(d)) + steps.counterfeiter * sum(stackSizes(g)));
}

/** GB/s of `rounds` lecture iterations' Adam steps alone, on fresh arenas of both nets. */
async function kernelRate(
  g: number[],
  d: number[],
  batch: number,
  fitBatch: number,
  threaded: boolean,
): Promise<number> {
  const helper = threaded ? adamHelper(sharedModule()!) : null;
  if (threaded) {
    if (!helper) throw new Error("Adam keeps to one thread here (GAN_ADAM_THREADS=1 or one core)");
    await helper.whenUsable();
  }
  const rng = new Rng(3);
  const arenas = [d, g].map((w) => {
    const a = new SimdAdamArena(stackSizes(w), helper);
    a.g.forEach((x) => x.set(rng.normals(x.length).map((v) => v * 1e-3)));
    return a;
  });
  const steps = adamSteps(batch, fitBatch);
  const c = { lrT: 1e-4, b1: 0.9, b2: 0.999, eps: 1e-7, corr2: 1 };
  const iteration = () => {
    for (let s = 0; s < steps.police; s++) arenas[0].stepAll(c);
    for (let s = 0; s < steps.counterfeiter; s++) arenas[1].stepAll(c);
  };
  iteration(); // warm
  const rounds = 5, t0 = performance.now();
  for (let r = 0; r < rounds; r++) iteration();
  const seconds = (performance.now() - t0) / 1000 / rounds;
  return adamBytesPerIteration(g, d, batch, fitBatch) / seconds / 1e9;
}

/** GB/s of a plain copy (bytes read plus written) of 256 MB on this thread. */
function copyRate(): number {
  const n = 32 << 20, src = new Float32Array(n).fill(1), dst = new Float32Array(n);
  dst.set(src);
  const rounds = 5, t0 = performance.now();
  for (let r = 0; r < rounds; r++) dst.set(src);
  return (2 * 4 * n * rounds) / ((performance.now() - t0) / 1000) / 1e9;
}

/** Worker: prints {oneThread, twoThreads, copy} in GB/s as one JSON line. */
export async function adamTrafficWorker(
  g: number[],
  d: number[],
  batch: number,
  fitBatch: number,
): Promise<void> {
  const oneThread = await kernelRate(g, d, batch, fitBatch, false);
  const twoThreads = await kernelRate(g, d, batch, fitBatch, true).catch(() => null);
  console.log(JSON.stringify({ oneThread, twoThreads, copy: copyRate() }));
}
