/**
 * Sweeps: a base config, grid axes, seeds and optional random samples expand into points
 * (each a set of `--set` overrides); every point runs as an ordinary `run` over the shared
 * cache, up to `--jobs` at once in separate processes. The cache's entry locks make two
 * points that need the same stage compute it once. A sweep folder holds `sweep.json` (each
 * point: overrides, run folder, status, final figures) and the sweep report.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { expandSweep } from "./spec.ts";
 * const points = expandSweep({ grid: { "optimizer.learningRate": [1e-4, 1e-3] }, seeds: [0, 1] });
 * assert(points.length === 4);
 * ```
 */
import { basename, dirname, join, resolve } from "node:path";
import type { App } from "../app.ts";
import { didYouMean, loadConfig, parseJsonText } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { hashValue } from "../hash.ts";
import { Rng } from "../rng.ts";
import type { EngineConfig, Field } from "../schema.ts";
import { writeFileAtomic } from "../store.ts";
import type { Point } from "./record.ts";

export type { Point, PointRecord } from "./record.ts";

/** A range to sample from. */
export interface RandomRange {
  min: number;
  max: number;
  /** linear (uniform), log (log-uniform, for rates), int (uniform integer, inclusive). */
  scale?: "linear" | "log" | "int";
}

/** A sweep file, as written. */
export interface SweepSpec {
  name?: string;
  description?: string;
  base?: string | Record<string, unknown>;
  grid?: Record<string, unknown[]>;
  seeds?: number[];
  random?: { samples: number; seed?: number; ranges: Record<string, RandomRange> };
  rank?: { metric: string; order?: "asc" | "desc" };
  /** Successive halving: run every point to the first rung, extend only the best 1/eta. */
  search?: HalvingSearch;
}

/** A `search` of method `halving` (ASHA: asynchronous successive halving). */
export interface HalvingSearch {
  method: "halving";
  /** The figure compared at each rung (the rank metrics). */
  metric: string;
  /** Keep the best 1/eta of the points that finished a rung. */
  eta: number;
  /** The resource at each rung, increasing (e.g. iterations 100, 300, 900). */
  rungs: number[];
  /** The config field the rungs set; default: the application's. */
  resource?: string;
  /** The order new points start in: shuffled (default; see halving.ts) or as given. */
  order?: "shuffled" | "given";
}

const TOP_KEYS = [
  "$schema",
  "name",
  "description",
  "base",
  "grid",
  "seeds",
  "random",
  "rank",
  "search",
];

/** Every leaf path of the config schema (for checking axis names). */
export function configPaths(field: Field, prefix = ""): string[] {
  if (field.kind === "object") {
    return Object.entries(field.fields).flatMap(([k, f]) =>
      configPaths(f, prefix ? `${prefix}.${k}` : k)
    );
  }
  return [prefix];
}

const hint = didYouMean;

/** Checks a sweep file's structure; every error names the path and what is allowed. */
export function validateSweep(raw: unknown, src: string, app: App): SweepSpec {
  const rankMetrics = [...app.sweep.rankMetrics];
  const fail = (path: string, what: string): never => {
    throw new ConfigError(`${src}: ${path}: ${what}`);
  };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    fail("(top)", "a sweep must be a JSON object");
  }
  const s = raw as Record<string, unknown>;
  for (const k of Object.keys(s)) {
    if (!TOP_KEYS.includes(k)) {
      fail(k, `unknown key${hint(k, TOP_KEYS)}; allowed: ${TOP_KEYS.join(", ")}`);
    }
  }
  if (s.base === undefined) {
    fail("base", "required: a config path (relative to the sweep file) or an inline config");
  }
  if (
    typeof s.base !== "string" &&
    (typeof s.base !== "object" || s.base === null || Array.isArray(s.base))
  ) {
    fail("base", "expected a path string or an object");
  }
  const paths = configPaths(app.config.schema);
  const checkAxis = (where: string, path: string) => {
    if (path === "seed") fail(where, 'use "seeds" to repeat points over seeds');
    if (!paths.includes(path)) fail(where, `"${path}" is not a config field${hint(path, paths)}`);
  };
  if (s.grid !== undefined) {
    if (typeof s.grid !== "object" || s.grid === null || Array.isArray(s.grid)) {
      fail("grid", "expected an object of path: [values]");
    }
    if (Object.keys(s.grid as object).length === 0) {
      fail("grid", 'expected at least one axis, e.g. { "optimizer.learningRate": [1e-4, 1e-3] }');
    }
    for (const [path, values] of Object.entries(s.grid as Record<string, unknown>)) {
      checkAxis(`grid.${path}`, path);
      if (!Array.isArray(values) || values.length === 0) {
        fail(`grid.${path}`, "expected a non-empty array of values");
      }
    }
  }
  if (s.seeds !== undefined) {
    const ok = Array.isArray(s.seeds) && s.seeds.length > 0 &&
      s.seeds.every((x) => Number.isInteger(x) && x >= 0);
    if (!ok) fail("seeds", "expected a non-empty array of integers >= 0");
  }
  if (s.random !== undefined) {
    const r = s.random as Record<string, unknown>;
    if (typeof r !== "object" || r === null) fail("random", "expected { samples, seed, ranges }");
    for (const k of Object.keys(r)) {
      if (!["samples", "seed", "ranges"].includes(k)) {
        fail(`random.${k}`, `unknown key${hint(k, ["samples", "seed", "ranges"])}`);
      }
    }
    if (!Number.isInteger(r.samples) || (r.samples as number) < 1) {
      fail("random.samples", "expected an integer >= 1");
    }
    if (r.seed !== undefined && !Number.isInteger(r.seed)) {
      fail("random.seed", "expected an integer");
    }
    if (typeof r.ranges !== "object" || r.ranges === null) {
      fail("random.ranges", "expected an object of path: {min, max, scale}");
    }
    for (const [path, range] of Object.entries(r.ranges as Record<string, RandomRange>)) {
      checkAxis(`random.ranges.${path}`, path);
      if (
        typeof range?.min !== "number" || typeof range?.max !== "number" ||
        !(range.min <= range.max)
      ) {
        fail(`random.ranges.${path}`, "expected { min, max } numbers with min <= max");
      }
      if (range.scale !== undefined && !["linear", "log", "int"].includes(range.scale)) {
        fail(
          `random.ranges.${path}.scale`,
          `"${range.scale}" is not allowed; allowed: linear, log, int`,
        );
      }
      if (range.scale === "log" && range.min <= 0) {
        fail(`random.ranges.${path}`, "a log range needs min > 0");
      }
    }
  }
  if (s.search !== undefined) {
    const h = s.search as Record<string, unknown>;
    const keys = ["method", "metric", "eta", "rungs", "resource", "order"];
    if (typeof h !== "object" || h === null) {
      fail("search", "expected { method, metric, eta, rungs }");
    }
    for (const k of Object.keys(h)) {
      if (!keys.includes(k)) {
        fail(`search.${k}`, `unknown key${hint(k, keys)}; allowed: ${keys.join(", ")}`);
      }
    }
    if (h.method !== "halving") {
      fail("search.method", `"${h.method}" is not allowed; allowed: halving`);
    }
    if (!rankMetrics.includes(h.metric as string)) {
      fail(
        "search.metric",
        `"${h.metric}" is not allowed${hint(String(h.metric), rankMetrics)}; allowed: ${
          rankMetrics.join(", ")
        }`,
      );
    }
    if (!Number.isInteger(h.eta) || (h.eta as number) < 2) {
      fail("search.eta", "expected an integer >= 2");
    }
    const rungs = h.rungs as number[];
    if (
      !Array.isArray(rungs) || rungs.length < 2 ||
      !rungs.every((x, i) => Number.isInteger(x) && x > 0 && (i === 0 || x > rungs[i - 1]))
    ) {
      fail("search.rungs", "expected at least two increasing integers > 0, e.g. [100, 300, 900]");
    }
    if (h.order !== undefined && h.order !== "shuffled" && h.order !== "given") {
      fail("search.order", `"${h.order}" is not allowed; allowed: shuffled, given`);
    }
    const resource = (h.resource as string | undefined) ?? app.sweep.resource;
    if (!resource) fail("search.resource", "required: the config field the rungs set");
    checkAxis("search.resource", resource!);
  }
  if (s.rank !== undefined) {
    const r = s.rank as Record<string, unknown>;
    if (!rankMetrics.includes(r?.metric as string)) {
      fail(
        "rank.metric",
        `"${r?.metric}" is not allowed${hint(String(r?.metric), rankMetrics)}; allowed: ${
          rankMetrics.join(", ")
        }`,
      );
    }
    if (r.order !== undefined && r.order !== "asc" && r.order !== "desc") {
      fail("rank.order", "allowed: asc, desc");
    }
  }
  if (s.name !== undefined && (typeof s.name !== "string" || !/^[A-Za-z0-9._-]+$/.test(s.name))) {
    fail("name", "letters, digits, '.', '_', '-' only");
  }
  return s as SweepSpec;
}

/**
 * Expands a sweep into points: the grid's cartesian product (axes in file order), times the
 * random samples (each draws every range from the sweep seed), times the seeds. Deterministic.
 */
export function expandSweep(spec: SweepSpec): Point[] {
  let points: Point[] = [{}];
  for (const [path, values] of Object.entries(spec.grid ?? {})) {
    points = points.flatMap((p) => values.map((v) => ({ ...p, [path]: v })));
  }
  if (spec.random) {
    const rng = new Rng(spec.random.seed ?? 0, 77);
    const samples: Point[] = [];
    for (let i = 0; i < spec.random.samples; i++) {
      const sample: Point = {};
      for (const [path, r] of Object.entries(spec.random.ranges)) {
        const u = rng.uniform();
        sample[path] = r.scale === "log"
          ? Math.exp(Math.log(r.min) + u * (Math.log(r.max) - Math.log(r.min)))
          : r.scale === "int"
          ? Math.min(r.max, Math.floor(r.min + u * (r.max - r.min + 1)))
          : r.min + u * (r.max - r.min);
      }
      samples.push(sample);
    }
    points = points.flatMap((p) => samples.map((s) => ({ ...p, ...s })));
  }
  if (spec.seeds) points = points.flatMap((p) => spec.seeds!.map((seed) => ({ ...p, seed })));
  return points;
}

/** `--set` strings of a point. */
export function overridesOf(point: Point): string[] {
  return Object.entries(point).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
}

/** A loaded sweep: its spec, the base config file to run points from, and its points. */
export interface LoadedSweep {
  spec: SweepSpec;
  name: string;
  basePath: string;
  points: Point[];
  configs: EngineConfig[];
}

/** Reads, validates and expands a sweep file; every point's config is validated too. */
export async function loadSweep(
  path: string,
  workDir: string,
  app: App,
  { fullGrid = false }: { fullGrid?: boolean } = {},
): Promise<LoadedSweep> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    throw new ConfigError(`sweep file not found: ${path} (sweeps live in configs/sweeps/)`);
  }
  let spec = validateSweep(parseJsonText(text, path), path, app);
  let name = spec.name ?? basename(path).replace(/\.json$/, "");
  if (fullGrid) {
    // what a halving search is measured against: every point run to the last rung
    if (!spec.search) {
      throw new ConfigError(`${path}: --full-grid: the sweep has no "search" block to leave out`);
    }
    const { search, ...rest } = spec;
    const resource = search.resource ?? app.sweep.resource!;
    spec = { ...rest, grid: { ...rest.grid, [resource]: [search.rungs.at(-1)!] } };
    name = `${name}-full`;
  }
  let basePath: string;
  if (typeof spec.base === "string") {
    basePath = resolve(dirname(resolve(path)), spec.base);
  } else {
    // an inline base: written beside the sweep's outputs so points can `extends` nothing
    await Deno.mkdir(workDir, { recursive: true });
    basePath = join(workDir, `${name}-base.json`);
    const inline = { ...spec.base } as Record<string, unknown>;
    if (typeof inline.extends === "string") {
      inline.extends = resolve(dirname(resolve(path)), inline.extends);
    }
    await writeFileAtomic(basePath, JSON.stringify(inline, null, 2) + "\n");
  }
  const points = expandSweep(spec);
  const configs: EngineConfig[] = [];
  for (const [i, p] of points.entries()) {
    try {
      configs.push(
        await loadConfig(app.config, basePath, [
          ...overridesOf(p),
          `name=${name}-p${String(i).padStart(3, "0")}`,
        ]),
      );
    } catch (e) {
      throw new ConfigError(
        `${path}: point ${i} (${overridesOf(p).join(" ")}): ${(e as Error).message}`,
      );
    }
  }
  return { spec, name, basePath, points, configs };
}

/** The sweep's folder: `<results>/sweeps/<name>-<hash of its points>`. */
export function sweepDir(results: string, s: LoadedSweep): string {
  return join(results, "sweeps", `${s.name}-${hashValue(s.configs).slice(0, 12)}`);
}
