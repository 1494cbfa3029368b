/** The runs query language, and `tag` / `runs --where` on the command line. */
import assert from "node:assert/strict";
import { parseQuery, type QueryRow } from "../pipeline/query.ts";
import { cli, seedRuns, tinyRun } from "./helpers.ts";

const FIELDS = {
  params: ["seed", "optimizer.learningRate", "optimizer.police.learningRate", "evaluator.kind"],
  figures: ["frechet", "classesCovered"],
};

const row = (
  seed: number,
  frechet: number | undefined,
  extra: Partial<QueryRow> = {},
): QueryRow => ({
  run: `quick-${seed}`,
  status: "ok",
  config: { seed, "optimizer.learningRate": 1e-3 * seed, "evaluator.kind": "mlp" },
  figures: { frechet, classesCovered: seed + 7 },
  ...extra,
});

Deno.test("queries: comparisons, and/or/not, parentheses, MLflow's prefixes, tags, contains", () => {
  const rows = [
    row(1, 120),
    row(2, 80, { tags: ["best"] }),
    row(3, undefined, { status: "failed" }),
  ];
  const runs = (q: string) => rows.filter(parseQuery(q, FIELDS)).map((r) => r.run);
  assert.deepEqual(runs("frechet < 100 and seed = 2"), ["quick-2"]);
  assert.deepEqual(runs("metrics.frechet >= 80 or params.seed == 3"), [
    "quick-1",
    "quick-2",
    "quick-3",
  ]);
  assert.deepEqual(runs("not (seed = 1 or seed = 2)"), ["quick-3"]);
  assert.deepEqual(runs("tag = best"), ["quick-2"]);
  assert.deepEqual(runs("status != ok"), ["quick-3"]);
  assert.deepEqual(runs("run ~ QUICK-1"), ["quick-1"]);
  assert.deepEqual(runs("learningRate > 0.0015"), ["quick-2", "quick-3"]); // the shallowest path
  assert.deepEqual(runs("evaluator.kind = 'mlp' and classesCovered >= 9"), ["quick-2", "quick-3"]);
  assert.deepEqual(runs("frechet > 0"), ["quick-1", "quick-2"]); // no figure: no match
  assert.deepEqual(runs("seed = 1e0"), ["quick-1"]);
});

Deno.test("a bad query says what and where, with the closest field", () => {
  const bad: [string, RegExp][] = [
    ["frechett < 1", /unknown field "frechett" \(did you mean "frechet"\?\)/],
    ["seed", /expected an operator \(= != < <= > >= ~\) after "seed" at the end/],
    ["seed =", /expected a value after "seed =" at the end/],
    ["seed = 1 seed = 2", /unexpected at 10 \("seed"\): join conditions with and\/or/],
    ["(seed = 1", /expected "\)" at the end/],
    ["seed = 'one", /unclosed ' at 8/],
    ["", /empty query/],
  ];
  for (const [q, want] of bad) assert.throws(() => parseQuery(q, FIELDS), want, q);
  const deep = { params: ["a.x", "b.x"], figures: [] };
  assert.throws(() => parseQuery("x = 1", deep), /field "x" is ambiguous: a.x, b.x; give the path/);
});

Deno.test("tag marks a run outside every key; runs shows the tags and --where filters on them", async () => {
  const { cfg, results } = await tinyRun();
  const names = await seedRuns(cfg, results, [1, 2]);
  const t = await cli([
    "tag",
    names[1],
    "best",
    "baseline",
    "--note",
    "first try",
    "--results",
    results,
  ]);
  assert.equal(t.code, 0, t.stderr);
  assert.equal(t.stdout.trim(), `${names[1]}: baseline, best; note: first try`);
  const off = await cli(["tag", names[1], "--remove", "baseline", "--results", results]);
  assert.equal(off.stdout.trim(), `${names[1]}: best; note: first try`);
  const bad = await cli(["tag", names[1], "two words", "--results", results]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /"two words": a tag is letters, digits/);
  const json = JSON.parse((await cli(["runs", "--results", results, "--json"])).stdout);
  const tagged = json.find((r: { run: string }) => r.run === names[1]);
  assert.deepEqual([tagged.tags, tagged.note], [["best"], "first try"]);
  const where = await cli(["runs", "--results", results, "--where", "tag = best", "--csv"]);
  assert.equal(where.code, 0, where.stderr);
  const lines = where.stdout.trim().split("\n");
  assert.equal(lines.length, 2);
  assert.ok(lines[1].startsWith(names[1]));
  assert.match(lines[0], /\btags\b/);
  const seed = await cli(["runs", "--results", results, "--where", "seed = 1", "--json"]);
  assert.deepEqual(JSON.parse(seed.stdout).map((r: { run: string }) => r.run), [names[0]]);
  const typo = await cli(["runs", "--results", results, "--where", "sede = 1"]);
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /^error: --where: unknown field "sede" \(did you mean "seed"\?\)/);
  // tags change no key: the same run is cached, its tags stay
  const again = await cli(["run", cfg, "seed=2", "--results", results, "--until", "preprocess"]);
  assert.match(again.stderr, /all 2 stages cached/);
  assert.equal(
    (await cli(["tag", names[1], "--results", results])).stdout.trim(),
    `${names[1]}: best; note: first try`,
  );
});
