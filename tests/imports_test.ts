/**
 * The house rules a reader relies on: no import cycles anywhere (type-only imports count), and
 * the engine (pipeline/) imports nothing from the application (stages/).
 */
import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";
import { importsOf } from "../pipeline/code_digest.ts";
import { ROOT } from "./helpers.ts";

/** Every project module under `dirs` -> the project modules it imports (type-only included). */
async function graph(dirs: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const p = join(dir, e.name);
      if (e.isDirectory) await walk(p);
      else if (e.name.endsWith(".ts")) {
        const deps = importsOf(await Deno.readTextFile(p), { types: true })
          .filter((s) => s.startsWith("."))
          .map((s) => relative(ROOT, resolve(dirname(p), s)));
        out.set(relative(ROOT, p), deps);
      }
    }
  };
  for (const d of dirs) await walk(join(ROOT, d));
  return out;
}

/** The cycles of a graph, each as the modules around it. */
function cycles(g: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (m: string) => {
    state.set(m, "open");
    stack.push(m);
    for (const d of g.get(m) ?? []) {
      if (state.get(d) === "open") found.push([...stack.slice(stack.indexOf(d)), d]);
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(m, "done");
  };
  for (const m of [...g.keys()].sort()) if (!state.has(m)) visit(m);
  return found;
}

Deno.test("cycles() finds a cycle through type-only imports", () => {
  const g = new Map([["a.ts", ["b.ts"]], ["b.ts", ["c.ts"]], ["c.ts", ["a.ts"]], ["d.ts", []]]);
  assert.deepEqual(cycles(g), [["a.ts", "b.ts", "c.ts", "a.ts"]]);
  assert.deepEqual(importsOf(`import type { A } from "./a.ts";`, { types: true }), ["./a.ts"]);
});

Deno.test("no module of pipeline/, stages/ or tests/ is part of an import cycle", async () => {
  const g = await graph(["pipeline", "stages", "tests"]);
  assert.ok(g.size > 50, `read ${g.size} modules`);
  assert.deepEqual(cycles(g).map((c) => c.join(" -> ")), []);
});

Deno.test("the engine names nothing of the application: no BLAS, no GAN, no report file", async () => {
  const words = /openblas|\bblas\b|GAN_DEBUG|frechet|report\.html|counterfeiter|police|mnist/i;
  const found: string[] = [];
  for (const m of (await graph(["pipeline"])).keys()) {
    (await Deno.readTextFile(join(ROOT, m))).split("\n").forEach((line, i) => {
      if (words.test(line)) found.push(`${m}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(found, []);
});

Deno.test("the engine imports nothing from the application", async () => {
  const g = await graph(["pipeline"]);
  const wrong = [...g].flatMap(([m, deps]) =>
    deps.filter((d) => d.startsWith("stages/")).map((d) => `${m} -> ${d}`)
  );
  assert.deepEqual(wrong, []);
});
