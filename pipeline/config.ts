/**
 * Loading a config: read JSON (errors with line and column), follow `extends`, apply
 * `--set path=value` overrides, then validate every field against the application's schema
 * and fill defaults. Every error names the path, what was wrong and what is allowed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadConfig } from "./config.ts";
 * import { ENGINE_FIELDS, int, obj } from "./schema.ts";
 * const schema = obj("demo", { ...ENGINE_FIELDS, epochs: int(3, "passes") });
 * const file = await Deno.makeTempFile({ suffix: ".json" });
 * await Deno.writeTextFile(file, "{}");
 * const cfg = await loadConfig({ schema }, file, ["epochs=5"]);
 * assert((cfg as unknown as { epochs: number }).epochs === 5);
 * ```
 */
import { basename, dirname, join, resolve } from "node:path";
import { ConfigError } from "./errors.ts";
import type {
  EngineConfig,
  Field,
  JsonField,
  ListField,
  ObjectField,
  RecordField,
} from "./schema.ts";
import { META_KEYS } from "./schema.ts";

/** What an application gives the engine to load its configs. */
export interface ConfigSpec<C extends EngineConfig = EngineConfig> {
  /** The whole schema (the engine's fields included). */
  schema: ObjectField;
  /**
   * Cross-field rules the per-field schema cannot say, and paths to resolve against the
   * config file's folder; throws a ConfigError.
   */
  finish?(cfg: C, file: string): void;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Parses JSON text; a syntax error names the file, line and column. */
export function parseJsonText(text: string, file: string): Json {
  try {
    return JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    let line: number | undefined, col: number | undefined;
    const lc = /line (\d+) column (\d+)/.exec(msg);
    const pos = /position (\d+)/.exec(msg);
    if (lc) [line, col] = [Number(lc[1]), Number(lc[2])];
    else if (pos) {
      const before = text.slice(0, Number(pos[1])).split("\n");
      line = before.length;
      col = before[before.length - 1].length + 1;
    } else if (/end of JSON input|Unterminated/i.test(msg)) {
      const lines = text.split("\n");
      line = lines.length;
      col = lines[lines.length - 1].length + 1;
    }
    const where = line !== undefined ? `:${line}:${col}` : "";
    const reason = msg.replace(/\s*(in JSON )?at position \d+.*$/, "").replace(
      /^JSON\.parse: /,
      "",
    );
    throw new ConfigError(`${file}${where}: malformed JSON: ${reason}`);
  }
}

/** The largest config file read (the shipped ones are under 2 kB). */
export const MAX_CONFIG_BYTES = 1 << 20;

/** The .json file beside `path` whose name is closest to its name, if one is close. */
function nearbyFile(path: string): string | null {
  const dir = dirname(path), name = basename(path);
  let names: string[];
  try {
    names = [...Deno.readDirSync(dir)].filter((e) => e.isFile && e.name.endsWith(".json"))
      .map((e) => e.name);
  } catch {
    return null;
  }
  const hint = didYouMean(name, names);
  if (!hint) return null;
  const best = hint.slice(hint.indexOf('"') + 1, hint.lastIndexOf('"'));
  return dir === "." && !path.startsWith("./") ? best : join(dir, best);
}

async function readJsonFile(path: string): Promise<Json> {
  let text: string;
  try {
    const st = await Deno.stat(path);
    if (st.isDirectory) {
      throw new ConfigError(
        `${path} is a folder, not a config file: give a .json file, e.g. configs/quick.json`,
      );
    }
    // a device or pipe (/dev/zero) would be read without end
    if (!st.isFile) {
      throw new ConfigError(`${path} is not a regular file: give a .json file`);
    }
    if (st.size > MAX_CONFIG_BYTES) {
      throw new ConfigError(
        `${path} is ${st.size} bytes; a config is at most ${MAX_CONFIG_BYTES} (is it a config?)`,
      );
    }
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    if (e instanceof Deno.errors.NotFound) {
      const near = nearbyFile(path);
      throw new ConfigError(
        `config file not found: ${path} (${
          near ? `did you mean ${near}?` : "check the path; configs live in configs/"
        })`,
      );
    }
    throw new ConfigError(`cannot read config ${path}: ${(e as Error).message}`);
  }
  return parseJsonText(text, path);
}

/** Deep merge: objects merge key by key, everything else (arrays included) replaces. */
export function deepMerge(base: Json, over: Json): Json {
  if (!isObject(base) || !isObject(over)) return structuredClone(over);
  const out: JsonObject = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = k in base ? deepMerge(base[k], v) : v;
  return out;
}

/** Reads a config file and everything it `extends`, merged (the file's own values win). */
export async function loadRaw(path: string, chain: string[] = []): Promise<JsonObject> {
  const abs = resolve(path);
  if (chain.includes(abs)) {
    throw new ConfigError(
      `extends cycle: ${[...chain, abs].map((p) => basename(p)).join(" -> ")} (remove one extends)`,
    );
  }
  const raw = await readJsonFile(path);
  if (!isObject(raw)) throw new ConfigError(`${path}: a config must be a JSON object`);
  const ext = raw["extends"];
  const own: JsonObject = { ...raw };
  delete own["extends"];
  delete own["$schema"];
  if (ext === undefined) return own;
  if (typeof ext !== "string") {
    throw new ConfigError(`${path}: extends: expected a path string, got ${JSON.stringify(ext)}`);
  }
  const parent = await loadRaw(resolve(dirname(abs), ext), [...chain, abs]);
  delete parent["name"]; // a name belongs to its own file
  return deepMerge(parent, own) as JsonObject;
}

/**
 * Parses `path=value`: JSON if it parses (numbers, booleans, null, arrays, objects), else a
 * bare string; a value that starts with `[`, `{` or `"` must be valid JSON.
 */
export function parseOverride(spec: string): { path: string[]; value: Json } {
  const eq = spec.indexOf("=");
  if (eq <= 0) {
    throw new ConfigError(`--set ${spec}: expected path=value, e.g. train.epochs=5`);
  }
  const path = spec.slice(0, eq).trim().split(".");
  const text = spec.slice(eq + 1);
  let value: Json;
  try {
    value = JSON.parse(text);
  } catch (e) {
    // a bare word is a string; something that starts like JSON and is not is a typo
    if (/^\s*[[{"]/.test(text)) {
      throw new ConfigError(
        `--set ${spec}: the value is not valid JSON (${
          (e as Error).message
        }); quote the whole argument in the shell, e.g. --set 'path=[1,2]'`,
      );
    }
    value = text;
  }
  return { path, value };
}

/** Applies one override in place, creating intermediate objects. */
export function applyOverride(cfg: JsonObject, path: string[], value: Json): void {
  let node: JsonObject = cfg;
  for (const key of path.slice(0, -1)) {
    if (!isObject(node[key])) node[key] = {};
    node = node[key] as JsonObject;
  }
  node[path[path.length - 1]] = value;
}

/** Edit distance, for "did you mean". */
export function levenshtein(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0];
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j];
      dp[j] = Math.min(dp[j] + 1, dp[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length];
}

/** A " (did you mean ...?)" hint naming the closest option, or "" when none is close. */
export function didYouMean(key: string, options: string[]): string {
  let best = "", bestD = Infinity;
  for (const o of options) {
    const d = levenshtein(key.toLowerCase(), o.toLowerCase());
    if (d < bestD) [best, bestD] = [o, d];
  }
  return bestD <= Math.max(2, Math.floor(key.length / 3)) ? ` (did you mean "${best}"?)` : "";
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return `array ${JSON.stringify(v)}`;
  if (typeof v === "object") return "an object";
  return `${typeof v} ${JSON.stringify(v)}`;
}

function range(f: { min?: number; max?: number; above?: number }): string {
  const parts: string[] = [];
  if (f.above !== undefined) parts.push(`> ${f.above}`);
  if (f.min !== undefined) parts.push(`>= ${f.min}`);
  if (f.max !== undefined) parts.push(`<= ${f.max}`);
  return parts.join(" and ");
}

/** A thrower of the ConfigError for the field at `path` of `src`. */
function failAt(src: string, path: string): (what: string) => never {
  return (what) => {
    throw new ConfigError(`${src}: ${path}: ${what}`, { path, problem: what });
  };
}

/** The free-form kinds: records, lists and any JSON (the sweep file's axes and base). */
function validateCollection(
  field: RecordField | ListField | JsonField,
  value: unknown,
  path: string,
  src: string,
): unknown {
  const fail = failAt(src, path);
  switch (field.kind) {
    case "record": {
      if (value === undefined) value = {};
      if (!isObject(value)) fail(`expected an object, got ${describe(value)}`);
      const entries = Object.entries(value as JsonObject);
      if (entries.length < field.minKeys) fail(`expected at least ${field.minKeys} key(s)`);
      return Object.fromEntries(
        entries.map(([k, v]) => [k, validate(field.value, v, path ? `${path}.${k}` : k, src)]),
      );
    }
    case "list": {
      if (value === undefined) return [];
      if (!Array.isArray(value)) fail(`expected an array, got ${describe(value)}`);
      const items = value as unknown[];
      if (items.length < field.minItems) {
        fail(
          field.minItems === 1
            ? "expected a non-empty array"
            : `expected at least ${field.minItems} items, got ${items.length}`,
        );
      }
      return items.map((v, i) => validate(field.item, v, `${path}[${i}]`, src));
    }
    case "json": {
      if (value === undefined) return null;
      const type = Array.isArray(value) ? "array" : value === null ? "null" : typeof value;
      if (field.types && !field.types.includes(type as never)) {
        fail(`expected ${field.types.join(" or ")}, got ${describe(value)}`);
      }
      return value;
    }
  }
}

/** The schema {@link loadConfig} is validating against, for hints that search all of it. */
let rootSchema: Field | null = null;

/** The dotted paths of the fields that hold values (not sections): what `--set` takes. */
export function leafPaths(field: Field): string[] {
  return fieldPaths(field, "", true);
}

/** Every named field's dotted path in `field` (only those holding values with `leaves`). */
function fieldPaths(field: Field, at = "", leaves = false): string[] {
  if (field.kind === "nullable") return fieldPaths(field.inner, at, leaves);
  if (field.kind !== "object") return at ? [at] : [];
  return Object.entries(field.fields).flatMap(([k, f]) => {
    const p = at ? `${at}.${k}` : k;
    const below = fieldPaths(f, p, leaves);
    // a value's own path is in `below` already; a section's is added unless only values count
    return leaves || below[0] === p ? below : [p, ...below];
  });
}

/**
 * A hint for a key unknown where it was put but known elsewhere in the schema: the paths whose
 * last name is the key (or closest to it), e.g. adversarial.learningRate -> optimizer.learningRate.
 */
function elsewhere(key: string, where: string): string {
  if (!rootSchema) return "";
  const paths = fieldPaths(rootSchema).filter((p) => p !== where);
  const last = (p: string) => p.slice(p.lastIndexOf(".") + 1);
  let found = paths.filter((p) => last(p).toLowerCase() === key.toLowerCase());
  if (found.length === 0) {
    const hint = didYouMean(key, [...new Set(paths.map(last))]);
    if (!hint) return "";
    const name = hint.slice(hint.indexOf('"') + 1, hint.lastIndexOf('"'));
    found = paths.filter((p) => last(p) === name);
  }
  const shown = found.slice(0, 3).map((p) => `"${p}"`).join(" or ");
  return shown ? ` (did you mean ${shown}?)` : "";
}

/** Validates a value against a field and fills defaults; throws a ConfigError naming the path. */
export function validate(field: Field, value: unknown, path: string, src: string): unknown {
  const fail = failAt(src, path);
  switch (field.kind) {
    case "object": {
      if (value === undefined) value = {};
      if (!isObject(value)) fail(`expected an object, got ${describe(value)}`);
      const obj = value as JsonObject;
      const names = Object.keys(field.fields);
      for (const k of Object.keys(obj)) {
        if (!(k in field.fields)) {
          const where = path ? `${path}.${k}` : k;
          const hint = didYouMean(k, names) || elsewhere(k, where);
          const problem = `unknown key${hint}; allowed here: ${names.join(", ")}`;
          throw new ConfigError(`${src}: ${where}: ${problem}`, { path: where, problem });
        }
      }
      const out: Record<string, unknown> = {};
      for (const [k, f] of Object.entries(field.fields)) {
        out[k] = validate(f, obj[k], path ? `${path}.${k}` : k, src);
      }
      return out;
    }
    case "nullable":
      if (value === undefined) return field.default;
      if (value === null) return null;
      return validate(field.inner, value, path, src);
    case "record":
    case "list":
    case "json":
      return validateCollection(field, value, path, src);
    case "int":
    case "number": {
      if (value === undefined) return field.default;
      if (typeof value !== "number" || !Number.isFinite(value)) {
        fail(
          `expected ${field.kind === "int" ? "an integer" : "a number"}, got ${describe(value)}`,
        );
      }
      const n = value as number;
      if (field.kind === "int" && !Number.isInteger(n)) fail(`expected an integer, got ${n}`);
      // past 2^53 JSON has already rounded it: two seeds would silently be one
      if (field.kind === "int" && !Number.isSafeInteger(n)) {
        fail(
          `${n} is beyond the integers a number holds exactly (at most ${Number.MAX_SAFE_INTEGER}); use a smaller one`,
        );
      }
      const r = range(field);
      const bad = (field.min !== undefined && n < field.min) ||
        (field.max !== undefined && n > field.max) ||
        (field.kind === "number" && field.above !== undefined && n <= field.above);
      if (bad) fail(`${n} is out of range; allowed: ${r}`);
      return n;
    }
    case "bool":
      if (value === undefined) return field.default;
      if (typeof value !== "boolean") fail(`expected true or false, got ${describe(value)}`);
      return value;
    case "string":
      if (value === undefined) return field.default;
      if (typeof value !== "string") fail(`expected a string, got ${describe(value)}`);
      return value;
    case "enum": {
      if (value === undefined) return field.default;
      if (typeof value !== "string" || !field.values.includes(value)) {
        const hint = typeof value === "string" ? didYouMean(value, [...field.values]) : "";
        fail(`${describe(value)} is not allowed${hint}; allowed: ${field.values.join(", ")}`);
      }
      return value;
    }
    case "intList": {
      if (value === undefined) return [...field.default];
      if (!Array.isArray(value) || value.length === 0) {
        fail(`expected a non-empty array of integers, got ${describe(value)}`);
      }
      (value as unknown[]).forEach((v, i) => {
        if (typeof v !== "number" || !Number.isInteger(v) || v < field.min) {
          fail(`[${i}]: expected an integer >= ${field.min}, got ${describe(v)}`);
        }
      });
      return [...(value as number[])];
    }
  }
}

/**
 * Loads, merges, overrides and validates a config file against `spec`. `overrides` are
 * `path=value` strings as given to `--set`.
 */
export async function loadConfig<C extends EngineConfig>(
  spec: ConfigSpec<C>,
  path: string,
  overrides: string[] = [],
): Promise<C> {
  const raw = await loadRaw(path);
  for (const o of overrides) {
    const { path: p, value } = parseOverride(o);
    if (typeof value === "number" && !Number.isFinite(value)) {
      throw new ConfigError(`--set ${o}: ${o.slice(o.indexOf("=") + 1)} is not a finite number`);
    }
    if (META_KEYS.includes(p[0] as typeof META_KEYS[number])) {
      throw new ConfigError(`--set ${o}: ${p[0]} cannot be overridden`);
    }
    applyOverride(raw, p, value);
  }
  let cfg: C;
  try {
    rootSchema = spec.schema;
    cfg = validate(spec.schema, raw, "", path) as C;
  } catch (e) {
    // a bad value that came from --set is blamed on the --set, not on the file
    const field = e instanceof ConfigError ? e.field : undefined;
    const culprit = field && overrides.findLast((o) => {
      const p = o.slice(0, o.indexOf("=")).trim();
      return field.path === p || field.path.startsWith(p + ".") || p.startsWith(field.path + ".");
    });
    if (culprit) throw new ConfigError(`--set ${culprit}: ${field.path}: ${field.problem}`, field);
    throw e;
  } finally {
    rootSchema = null;
  }
  if (cfg.name === "") cfg.name = basename(path).replace(/\.json$/, "");
  if (!/^[A-Za-z0-9._-]+$/.test(cfg.name)) {
    throw new ConfigError(
      `${path}: name: "${cfg.name}" may hold only letters, digits, '.', '_', '-'`,
    );
  }
  spec.finish?.(cfg, path);
  return cfg;
}
