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
import { didYouMean, loadConfig, parseJsonText, validate } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { hashValue } from "../hash.ts";
import { Rng } from "../rng.ts";
import {
  en,
  type EngineConfig,
  type Field,
  int,
  intList,
  json,
  list,
  nullable,
  num,
  obj,
  record,
  str,
} from "../schema.ts";
import { writeFileAtomic } from "../store.ts";
import type { Point } from "../point_record.ts";

export type { Point, PointRecord } from "../point_record.ts";

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

/** Every leaf path of the config schema (for checking axis names). */
export function configPaths(field: Field, prefix = ""): string[] {
  if (field.kind === "object") {
    return Object.entries(field.fields).flatMap(([k, f]) =>
      configPaths(f, prefix ? `${prefix}.${k}` : k)
    );
  }
  return [prefix];
}

/**
 * A sweep file's schema, declared with the toolkit configs use: it gives sweep files their
 * JSON Schema (`configs/sweeps/schema.json`) and the same errors as a config. What a schema
 * cannot say (axes name config fields, rungs increase) {@link checkSweep} checks after it.
 */
export function sweepSchema(ranking: Pick<App["sweep"], "rankMetrics" | "defaultRank">) {
  const metrics = [...ranking.rankMetrics] as [string, ...string[]];
  const metric = (doc: string) => en(ranking.defaultRank, metrics, doc);
  return obj("A gan-pipeline sweep: a base config and the points to run from it.", {
    name: str("", "The sweep's name (default: the file's); letters, digits, '.', '_', '-'."),
    description: str("", "Free text shown in the sweep report."),
    base: json("The base config: a path relative to this file, or an inline config (required).", [
      "string",
      "object",
    ]),
    grid: nullable(
      "Axes: config path -> the values to try; points are their cartesian product.",
      record("", list("", json("A value of the field."), 1)),
    ),
    seeds: nullable("Repeat every point over these seeds.", list("", int(0, "A seed.", 0), 1)),
    random: nullable(
      "Random samples: each draws every range from the sweep's seed.",
      obj("", {
        samples: int(1, "How many samples (required).", 1),
        seed: int(0, "The seed of the draws."),
        ranges: record(
          "Config path -> the range to draw it from (required).",
          obj("", {
            min: num(0, "The smallest value (required)."),
            max: num(0, "The largest value (required)."),
            scale: en("linear", ["linear", "log", "int"], "linear, log(-uniform) or int."),
          }),
          1,
        ),
      }),
    ),
    rank: nullable(
      "How points are ranked in the report.",
      obj("", {
        metric: metric("The figure points are ranked by."),
        order: en("asc", ["asc", "desc"], "asc: lower is better; desc: higher is."),
      }),
    ),
    search: nullable(
      "Successive halving: run every point to the first rung, extend only the best 1/eta.",
      obj("", {
        method: en("halving", ["halving"], "The search method (required)."),
        metric: metric("The figure compared at each rung (required)."),
        eta: int(3, "Keep the best 1/eta of the points that finished a rung (required).", 2),
        rungs: intList([100, 300, 900], 1, "The resource at each rung, increasing (required)."),
        resource: nullable(
          "The config field the rungs set (default: the application's).",
          str("", ""),
        ),
        order: en("shuffled", ["shuffled", "given"], "The order new points start in."),
      }),
    ),
  });
}

/** What the schema cannot say: required fields, config paths, ranges and rungs that make sense. */
function checkSweep(s: SweepSpec, src: string, app: App): void {
  const fail = (path: string, what: string): never => {
    throw new ConfigError(`${src}: ${path}: ${what}`);
  };
  const need = (v: unknown, path: string, what: string) => v === undefined && fail(path, what);
  need(s.base, "base", "required: a config path (relative to the sweep file) or an inline config");
  const paths = configPaths(app.config.schema);
  const checkAxis = (where: string, path: string) => {
    if (path === "seed") fail(where, 'use "seeds" to repeat points over seeds');
    if (!paths.includes(path)) {
      fail(where, `"${path}" is not a config field${didYouMean(path, paths)}`);
    }
  };
  if (s.grid && !Object.keys(s.grid).length) {
    fail("grid", 'expected at least one axis, e.g. { "optimizer.learningRate": [1e-4, 1e-3] }');
  }
  for (const path of Object.keys(s.grid ?? {})) checkAxis(`grid.${path}`, path);
  if (s.random) {
    need(s.random.samples, "random.samples", "required: how many samples, an integer >= 1");
    need(s.random.ranges, "random.ranges", "required: config path -> {min, max, scale}");
    for (const [path, r] of Object.entries(s.random.ranges)) {
      checkAxis(`random.ranges.${path}`, path);
      if (r.min === undefined || r.max === undefined || !(r.min <= r.max)) {
        fail(`random.ranges.${path}`, "expected { min, max } numbers with min <= max");
      }
      if (r.scale === "log" && r.min <= 0) {
        fail(`random.ranges.${path}`, "a log range needs min > 0");
      }
    }
  }
  const h = s.search;
  if (h) {
    for (const k of ["method", "metric", "eta", "rungs"] as const) {
      need(h[k], `search.${k}`, "required (see configs/sweeps/schema.json)");
    }
    if (h.rungs.length < 2 || !h.rungs.every((x, i) => i === 0 || x > h.rungs[i - 1])) {
      fail("search.rungs", "expected at least two increasing integers > 0, e.g. [100, 300, 900]");
    }
    const resource = h.resource ?? app.sweep.resource;
    if (!resource) fail("search.resource", "required: the config field the rungs set");
    checkAxis("search.resource", resource!);
  }
  if (s.rank) need(s.rank.metric, "rank.metric", "required: the figure points are ranked by");
  if (s.name !== undefined && !/^[A-Za-z0-9._-]+$/.test(s.name)) {
    fail("name", "letters, digits, '.', '_', '-' only");
  }
}

/**
 * Checks a sweep file against {@link sweepSchema} and {@link checkSweep}; every error names
 * the path and what is allowed. Returns the file's spec as written (defaults not filled in,
 * so a sweep record's spec stays the file's).
 */
export function validateSweep(raw: unknown, src: string, app: App): SweepSpec {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ConfigError(`${src}: (top): a sweep must be a JSON object`);
  }
  const { $schema: _schema, ...spec } = raw as Record<string, unknown>;
  validate(sweepSchema(app.sweep), spec, "", src);
  checkSweep(spec as SweepSpec, src, app);
  return spec as SweepSpec;
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

/**
 * Where a sweep comes from: a sweep file's path, or a spec made on the command line
 * (`sweep --base CONFIG -m path=a,b`; its `base` an absolute path), named for its messages by
 * `src`.
 */
export type SweepSource = string | { spec: Record<string, unknown>; src: string };

/** A source's raw spec, the name its messages use, the folder its paths are relative to. */
async function readSource(source: SweepSource) {
  if (typeof source !== "string") {
    return { raw: source.spec as unknown, src: source.src, dir: Deno.cwd(), fileName: null };
  }
  let text: string;
  try {
    text = await Deno.readTextFile(source);
  } catch {
    throw new ConfigError(`sweep file not found: ${source} (sweeps live in configs/sweeps/)`);
  }
  const fileName = basename(source).replace(/\.json$/, "");
  return { raw: parseJsonText(text, source), src: source, dir: dirname(resolve(source)), fileName };
}

/** Reads, validates and expands a sweep; every point's config is validated too. */
export async function loadSweep(
  source: SweepSource,
  workDir: string,
  app: App,
  { fullGrid = false }: { fullGrid?: boolean } = {},
): Promise<LoadedSweep> {
  const { raw, src, dir, fileName } = await readSource(source);
  let spec = validateSweep(raw, src, app);
  let name = spec.name ?? fileName ?? "multirun";
  if (fullGrid) {
    // what a halving search is measured against: every point run to the last rung
    if (!spec.search) {
      throw new ConfigError(`${src}: --full-grid: the sweep has no "search" block to leave out`);
    }
    const { search, ...rest } = spec;
    const resource = search.resource ?? app.sweep.resource!;
    spec = { ...rest, grid: { ...rest.grid, [resource]: [search.rungs.at(-1)!] } };
    name = `${name}-full`;
  }
  let basePath: string;
  if (typeof spec.base === "string") {
    basePath = resolve(dir, spec.base);
  } else {
    // an inline base: written beside the sweep's outputs so points can `extends` nothing
    await Deno.mkdir(workDir, { recursive: true });
    basePath = join(workDir, `${name}-base.json`);
    const inline = { ...spec.base } as Record<string, unknown>;
    if (typeof inline.extends === "string") {
      inline.extends = resolve(dir, inline.extends);
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
        `${src}: point ${i} (${overridesOf(p).join(" ")}): ${(e as Error).message}`,
      );
    }
  }
  return { spec, name, basePath, points, configs };
}

/** The sweep's folder: `<results>/sweeps/<name>-<hash of its points>`. */
export function sweepDir(results: string, s: LoadedSweep): string {
  return join(results, "sweeps", `${s.name}-${hashValue(s.configs).slice(0, 12)}`);
}
