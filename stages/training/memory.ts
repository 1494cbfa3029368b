/**
 * Memory estimates before anything runs: the sizes a config asks for (rows per iteration,
 * minibatch, samples) against this machine's memory, so a typo like a batch of 100000000 is
 * refused naming its field, not met by "Array buffer allocation failed" minutes later.
 * Estimates are upper bounds in float32 bytes of what the loop holds at once for that size.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tooLarge } from "./memory.ts";
 * const sizes = { noiseDim: 10, counterfeiter: [256, 512, 1024], police: [1024, 512, 256] };
 * assert.equal(tooLarge(sizes, { "adversarial.batchSize": 500 }, 8e9), null);
 * assert.match(tooLarge(sizes, { "adversarial.batchSize": 1e8 }, 8e9)!, /^adversarial.batchSize: 100000000 needs about/);
 * ```
 */

/** MNIST's image size: the estimates' upper bound for a row (smaller images need less). */
const IMAGE_DIM = 784;

/** The nets' widths that scale the scratch per row. */
export interface NetSizes {
  noiseDim: number;
  counterfeiter: number[];
  police: number[];
}

/** Float32 bytes held per row for each sized field (rows of the loop, a minibatch, samples). */
function bytesPerRow(field: string, s: NetSizes): number {
  const widths = [s.noiseDim, ...s.counterfeiter, IMAGE_DIM, ...s.police, 1]
    .reduce((a, b) => a + b, 0);
  // a pass keeps ~4 arrays a layer (activations, masked copy, their gradients)
  const passes = 4 * widths;
  if (field.endsWith("fitBatchSize")) return 4 * 2 * passes;
  // noise, real rows, fakes, the police's two-part inputs, fakes after the step, and passes
  if (field.endsWith("batchSize")) return 4 * (s.noiseDim + 6 * IMAGE_DIM + passes);
  // samples: images, their [0,1] copy, the clipped copy, and the passes that make them
  return 4 * (3 * IMAGE_DIM + passes);
}

/** "24.0 GB" */
const gb = (n: number) => n >= 1e12 ? `${(n / 1e12).toFixed(1)} TB` : `${(n / 1e9).toFixed(1)} GB`;

/**
 * The first of `fields` (path -> rows) whose estimate exceeds 80% of `memory` bytes, as one line
 * naming the field, the estimate and the memory; null when all fit.
 */
export function tooLarge(
  sizes: NetSizes,
  fields: Record<string, number>,
  memory: number,
): string | null {
  for (const [field, rows] of Object.entries(fields)) {
    const need = rows * bytesPerRow(field, sizes);
    if (need > 0.8 * memory) {
      return `${field}: ${rows} needs about ${gb(need)} at once, more than this machine's ${
        gb(memory)
      } of memory allows; use a smaller one`;
    }
  }
  return null;
}

/** This machine's memory in bytes, or null where it cannot be read (no --allow-sys). */
export function machineMemory(): number | null {
  try {
    return Deno.systemMemoryInfo().total;
  } catch {
    return null;
  }
}
