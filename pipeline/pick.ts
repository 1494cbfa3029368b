/**
 * Picks the fields at `paths` out of a config into an object of the same shape: the usual
 * way for a stage to say which part of the config its key holds.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pickPaths } from "./pick.ts";
 * const cfg = { seed: 1, model: { noiseDim: 10, hidden: [8] }, other: true };
 * assert.deepEqual(pickPaths(cfg, ["seed", "model.noiseDim"]), { seed: 1, model: { noiseDim: 10 } });
 * ```
 */
export function pickPaths(cfg: unknown, paths: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const path of paths) {
    const keys = path.split(".");
    let from = cfg as Record<string, unknown> | undefined;
    let to = out;
    keys.forEach((k, i) => {
      if (i === keys.length - 1) to[k] = from?.[k] ?? null;
      else {
        to = (to[k] ??= {}) as Record<string, unknown>;
        from = from?.[k] as Record<string, unknown> | undefined;
      }
    });
  }
  return out;
}
