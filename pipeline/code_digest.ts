/**
 * The code a stage runs, as data for its cache key: every project module in its static
 * import graph (with its SHA-256) and every npm package the graph reaches (with the
 * integrity deno.lock pins for it and its dependencies). An edit to any of them changes the
 * stage's key; an edit to a module outside the graph does not.
 *
 * The graph is read from the sources, as Deno's loader would follow it: static `import` and
 * `export ... from`, side-effect imports and dynamic `import("...")` with a literal
 * specifier. Type-only imports (`import type`, `export type`) are left out: they are erased
 * before the code runs, so they cannot change a number. Files are hashed byte for byte, so a
 * comment or formatting edit counts as a change (see the README's "Cache keys").
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { codeDigest } from "./code_digest.ts";
 * const d = await codeDigest([new URL("./hash.ts", import.meta.url).href]);
 * assert(d.files["pipeline/hash.ts"].length === 64);
 * assert(!("pipeline/store.ts" in d.files), "hash.ts does not import the store");
 * ```
 */
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { sha256Hex } from "./hash.ts";

/** What a stage's key holds of its code. */
export interface CodeDigest {
  /** Project modules by path relative to the project root (`/`-separated) -> SHA-256. */
  files: Record<string, string>;
  /** npm packages reached (`name@version`) -> the integrity deno.lock pins. */
  packages: Record<string, string>;
}

interface Project {
  root: string;
  imports: Record<string, string>;
  lock: {
    specifiers?: Record<string, string>;
    npm?: Record<string, { integrity?: string; dependencies?: string[] }>;
  };
}

const projects = new Map<string, Promise<Project>>();
const fileCache = new Map<string, Promise<{ sha: string; specifiers: string[] } | null>>();

/** The nearest folder at or above `dir` that holds a deno.json, with its import map and lock. */
function projectOf(dir: string): Promise<Project> {
  let p = projects.get(dir);
  if (!p) {
    p = (async () => {
      let d = dir;
      while (true) {
        try {
          const json = JSON.parse(await Deno.readTextFile(join(d, "deno.json")));
          let lock = {};
          try {
            lock = JSON.parse(await Deno.readTextFile(join(d, "deno.lock")));
          } catch { /* no lock: packages are named by their import map entry alone */ }
          return { root: d, imports: json.imports ?? {}, lock };
        } catch (e) {
          if (!(e instanceof Deno.errors.NotFound)) throw e;
        }
        const up = dirname(d);
        if (up === d) return { root: dir, imports: {}, lock: {} };
        d = up;
      }
    })();
    projects.set(dir, p);
  }
  return p;
}

// Anchored at a line start, so doc examples inside JSDoc (` * import ...`) do not count.
const STATIC =
  /^[ \t]*(?:import|export)[ \t]+(type[ \t]+)?(?:[^;'"]*?[ \t\n}*]from[ \t]*)?["']([^"'\n]+)["']/gm;
const DYNAMIC = /\bimport\(\s*["']([^"'\n]+)["']\s*\)/g;

/**
 * The specifiers a module's source imports: the runtime ones, and with `types` the type-only
 * ones too.
 */
export function importsOf(source: string, { types = false } = {}): string[] {
  const out = new Set<string>();
  for (const m of source.matchAll(STATIC)) if (types || !m[1]) out.add(m[2]);
  for (const m of source.matchAll(DYNAMIC)) out.add(m[1]);
  return [...out];
}

function readModule(path: string) {
  let p = fileCache.get(path);
  if (!p) {
    p = (async () => {
      let bytes: Uint8Array;
      try {
        bytes = await Deno.readFile(path);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return null;
        throw e;
      }
      return { sha: sha256Hex(bytes), specifiers: importsOf(new TextDecoder().decode(bytes)) };
    })();
    fileCache.set(path, p);
  }
  return p;
}

/** `npm:name@range/sub` -> `npm:name@range`. */
function npmRequest(spec: string): string {
  const body = spec.slice(4);
  const at = body.indexOf("@", body.startsWith("@") ? 1 : 0);
  if (at < 0) return spec;
  const slash = body.indexOf("/", at);
  return "npm:" + (slash < 0 ? body : body.slice(0, slash));
}

/** Adds a locked npm package and everything it depends on. */
function addPackage(project: Project, request: string, out: Record<string, string>): void {
  const npm = project.lock.npm ?? {};
  const resolved = project.lock.specifiers?.[request];
  if (!resolved) {
    out[request.slice(4)] = "not in deno.lock";
    return;
  }
  const body = request.slice(4);
  const name = body.slice(0, body.indexOf("@", body.startsWith("@") ? 1 : 0));
  const stack = [`${name}@${resolved}`];
  while (stack.length) {
    const id = stack.pop()!;
    const clean = id.split("_")[0];
    if (clean in out) continue;
    const entry = npm[id];
    out[clean] = entry?.integrity ?? "unknown";
    for (const dep of entry?.dependencies ?? []) {
      const at = dep.indexOf("@", dep.startsWith("@") ? 1 : 0);
      if (at > 0) stack.push(dep);
      else stack.push(...Object.keys(npm).filter((k) => k.startsWith(`${dep}@`)));
    }
  }
}

/**
 * The digest of the code reached from `roots` (module URLs): project files and locked npm
 * packages. Files are named relative to the project root (the folder of deno.json), so two
 * clones of one commit give the same digest. `packages` names packages read as data (not
 * imported), by their import-map names.
 */
export async function codeDigest(
  roots: string[],
  { packages: dataPackages = [] }: { packages?: readonly string[] } = {},
): Promise<CodeDigest> {
  const files: Record<string, string> = {};
  const packages: Record<string, string> = {};
  if (!roots.length) return { files, packages };
  const project = await projectOf(dirname(fileURLToPath(roots[0])));
  for (const spec of dataPackages) {
    const target = resolveSpecifier(project, project.root, spec);
    if (target.kind === "npm") addPackage(project, target.request, packages);
    else packages[spec] = "not an npm package of the import map";
  }
  const seen = new Set<string>();
  const queue = roots.map((r) => fileURLToPath(r));
  while (queue.length) {
    const path = queue.pop()!;
    if (seen.has(path)) continue;
    seen.add(path);
    const mod = await readModule(path);
    if (!mod) continue;
    files[relative(project.root, path).split("\\").join("/")] = mod.sha;
    for (const spec of mod.specifiers) {
      const target = resolveSpecifier(project, path, spec);
      if (target.kind === "file") queue.push(target.path);
      else if (target.kind === "npm") addPackage(project, target.request, packages);
    }
  }
  const sorted = <T>(o: Record<string, T>) =>
    Object.fromEntries(Object.entries(o).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0));
  return { files: sorted(files), packages: sorted(packages) };
}

type Target = { kind: "file"; path: string } | { kind: "npm"; request: string } | {
  kind: "other";
};

function resolveSpecifier(project: Project, from: string, spec: string): Target {
  if (spec.startsWith("./") || spec.startsWith("../") || spec.startsWith("/")) {
    return { kind: "file", path: resolve(dirname(from), spec) };
  }
  if (spec.startsWith("file:")) return { kind: "file", path: fileURLToPath(spec) };
  if (spec.startsWith("npm:")) return { kind: "npm", request: npmRequest(spec) };
  for (const [key, value] of Object.entries(project.imports)) {
    if (spec === key || spec.startsWith(key.endsWith("/") ? key : key + "/")) {
      return resolveSpecifier(project, from, value + spec.slice(key.length));
    }
  }
  return { kind: "other" }; // node: built-ins and anything unmapped: part of the runtime
}
