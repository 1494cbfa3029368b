/**
 * Multirun from the command line, as Hydra users type it: `sweep --base CONFIG -m
 * optimizer.learningRate=1e-4,3e-4 seed=1,2` makes the spec a sweep file with that base, grid
 * and seeds would hold, so it runs the same way (folder, cache, report, resume). A value is
 * JSON where it parses as JSON, else a string; `seed=` sets the seeds.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { multirunSpec } from "./multirun.ts";
 * const spec = multirunSpec("/c/quick.json", ["optimizer.learningRate=1e-4,3e-4", "seed=1,2"], {});
 * assert.deepEqual(spec.grid, { "optimizer.learningRate": [1e-4, 3e-4] });
 * assert.deepEqual(spec.seeds, [1, 2]);
 * assert.equal(spec.name, "quick");
 * ```
 */
import { basename, resolve } from "node:path";
import { UsageError } from "../errors.ts";

/** The search options of a multirun (`--search halving --rungs 20,60 ...`). */
export interface MultirunSearch {
  search?: string;
  rungs?: string;
  metric?: string;
  eta?: string;
  name?: string;
}

/** One value of an axis: JSON where it parses, else the word as a string. */
function valueOf(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The spec of `--base BASE` with axes `path=v1,v2` and the search options. */
export function multirunSpec(
  base: string,
  axes: string[],
  opts: MultirunSearch,
  usage?: string,
  defaultMetric = "",
): Record<string, unknown> {
  if (!axes.length) {
    throw new UsageError(
      "--base: give at least one axis, e.g. -m optimizer.learningRate=1e-4,3e-4",
      usage,
    );
  }
  const grid: Record<string, unknown[]> = {};
  let seeds: unknown[] | undefined;
  for (const axis of axes) {
    const eq = axis.indexOf("=");
    if (eq <= 0 || eq === axis.length - 1) {
      throw new UsageError(`${axis}: expected path=value1,value2,... (e.g. seed=1,2)`, usage);
    }
    const path = axis.slice(0, eq), values = axis.slice(eq + 1).split(",").map(valueOf);
    if (path in grid || (path === "seed" && seeds)) {
      throw new UsageError(`${path}: given twice; list its values once, comma-separated`, usage);
    }
    if (path === "seed") seeds = values;
    else grid[path] = values;
  }
  const spec: Record<string, unknown> = {
    name: opts.name ?? basename(base).replace(/\.json$/, ""),
    base: resolve(base),
  };
  if (Object.keys(grid).length) spec.grid = grid;
  if (seeds) spec.seeds = seeds;
  if (opts.search !== undefined) spec.search = searchOf(opts, defaultMetric, usage);
  else if (opts.rungs ?? opts.metric ?? opts.eta) {
    throw new UsageError("--rungs, --metric and --eta go with --search halving", usage);
  }
  return spec;
}

/** The `search` block of the options. */
function searchOf(opts: MultirunSearch, defaultMetric: string, usage?: string) {
  if (opts.search !== "halving") {
    throw new UsageError(`--search ${opts.search}: expected halving`, usage);
  }
  if (!opts.rungs) {
    throw new UsageError("--search halving needs --rungs, e.g. --rungs 20,60", usage);
  }
  const rungs = opts.rungs.split(",").map(Number);
  if (rungs.some((r) => !Number.isInteger(r))) {
    throw new UsageError(`--rungs ${opts.rungs}: expected integers, e.g. 20,60`, usage);
  }
  return {
    method: "halving",
    metric: opts.metric ?? defaultMetric,
    eta: Number(opts.eta ?? 3),
    rungs,
  };
}
