/**
 * The run index (pipeline/run_index.ts): listings answer from it, follow the writers'
 * markers, notice folders that come and go, rebuild when the file is damaged or deleted, and
 * hold up under several listings at once.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { APP } from "../stages/app.ts";
import {
  configPaths,
  differingPaths,
  HeldRuns,
  listRuns,
  type RunRow,
} from "../pipeline/runs_cli.ts";
import { DIRTY_DIR, INDEX_FILE, markRunChanged } from "../pipeline/run_index.ts";
import { syntheticRuns } from "../stages/tools/ui_bench.ts";
import { cli, ROOT, tinyRun } from "./helpers.ts";

async function results(n: number): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "gan-index-" });
  await syntheticRuns(ROOT, dir, n);
  return dir;
}

const names = (rows: { run: string }[]) => rows.map((r) => r.run);

/** Rows with their configs as plain objects (the index's share a base through a prototype). */
const plain = (rows: RunRow[]) =>
  rows.map((r) => {
    const config: Record<string, unknown> = {};
    for (const k in r.config) config[k] = r.config[k];
    return { ...r, config };
  });

Deno.test("the index answers a second listing without reading the folders, and follows markers", async () => {
  const dir = await results(5);
  const first = await listRuns(APP, dir);
  assert.equal(first.length, 5);
  await Deno.stat(join(dir, INDEX_FILE));
  // a record changed with no marker: the index still answers with what it read
  const run = first[2];
  const file = join(run.dir, "run.json");
  const rec = JSON.parse(await Deno.readTextFile(file));
  rec.stages[0].summary.frechet = 1234.5;
  await Deno.writeTextFile(file, JSON.stringify(rec));
  assert.notEqual((await listRuns(APP, dir))[2].figures.frechet, 1234.5);
  // the writers' marker: read again, marker taken
  await markRunChanged(run.dir);
  assert.equal((await listRuns(APP, dir))[2].figures.frechet, 1234.5);
  assert.deepEqual([...Deno.readDirSync(join(dir, DIRTY_DIR))], []);
  // same rows as a listing that cannot use the index (the folders read one by one)
  const fresh = await listRuns(APP, dir);
  await Deno.remove(join(dir, INDEX_FILE));
  assert.deepEqual(plain(await listRuns(APP, dir)), plain(fresh));
});

Deno.test("configs read back from the index are the configs: a field one lacks, an array changed", async () => {
  const dir = await results(3);
  const rows = await listRuns(APP, dir);
  const file = join(rows[1].dir, "run.json");
  const rec = JSON.parse(await Deno.readTextFile(file));
  assert.ok("description" in rec.config);
  delete rec.config.description;
  rec.config.model.counterfeiter.hidden = [7, 9];
  await Deno.writeTextFile(file, JSON.stringify(rec));
  await markRunChanged(rows[1].dir);
  for (const listing of [await listRuns(APP, dir), await listRuns(APP, dir)]) {
    const [a, b, c] = listing;
    assert.equal(b.config.description, undefined);
    assert.ok(typeof a.config.description === "string");
    assert.deepEqual(b.config["model.counterfeiter.hidden"], [7, 9]);
    assert.notDeepEqual(c.config["model.counterfeiter.hidden"], [7, 9]);
    const differing = differingPaths(listing.map((r) => r.config));
    assert.ok(differing.includes("description"), differing.join(", "));
    assert.ok(differing.includes("model.counterfeiter.hidden"));
    assert.ok(configPaths(listing).includes("model.police.dropout"));
  }
});

Deno.test("the index drops folders that are gone and reads folders it never saw", async () => {
  const dir = await results(4);
  const before = await listRuns(APP, dir);
  await Deno.remove(before[0].dir, { recursive: true });
  const copy = join(dir, "runs", "zz-copied-000000000000");
  await Deno.mkdir(copy);
  await Deno.copyFile(join(before[1].dir, "run.json"), join(copy, "run.json"));
  const after = await listRuns(APP, dir);
  assert.deepEqual(names(after), [...names(before).slice(1), "zz-copied-000000000000"]);
  // a folder that is not a run is not listed, and becomes one when its record lands
  const empty = join(dir, "runs", "aa-empty");
  await Deno.mkdir(empty);
  assert.ok(!names(await listRuns(APP, dir)).includes("aa-empty"));
  await Deno.copyFile(join(before[1].dir, "run.json"), join(empty, "run.json"));
  assert.ok(names(await listRuns(APP, dir)).includes("aa-empty"));
});

Deno.test("a damaged index file is rebuilt from the folders", async () => {
  const dir = await results(3);
  const rows = await listRuns(APP, dir);
  for (const f of [INDEX_FILE, `${INDEX_FILE}-wal`, `${INDEX_FILE}-shm`]) {
    await Deno.remove(join(dir, f)).catch(() => {});
  }
  await Deno.writeTextFile(join(dir, INDEX_FILE), "this is not a database, ".repeat(400));
  assert.deepEqual(plain(await listRuns(APP, dir)), plain(rows));
  // and a truncated one
  const bytes = await Deno.readFile(join(dir, INDEX_FILE));
  await Deno.writeFile(join(dir, INDEX_FILE), bytes.subarray(0, 100));
  assert.deepEqual(plain(await listRuns(APP, dir)), plain(rows));
});

Deno.test("listings at once in several processes all answer every run", async () => {
  const dir = await results(300);
  const listings = await Promise.all(
    Array.from({ length: 4 }, () => cli(["runs", "--results", dir, "--json"])),
  );
  for (const l of listings) {
    assert.equal(l.code, 0, l.stderr);
    assert.equal(JSON.parse(l.stdout).length, 300);
  }
});

Deno.test("a run, a tag and a rerun each show at once in runs, through the index", async () => {
  const { cfg, results } = await tinyRun();
  const ran = await cli(["run", cfg, "--results", results]);
  assert.equal(ran.code, 0, ran.stderr);
  const listed = await cli(["runs", "--results", results, "--json"]);
  assert.equal(listed.code, 0, listed.stderr);
  const [row] = JSON.parse(listed.stdout);
  assert.equal(row.status, "ok");
  assert.ok(row.trainedAt, "the training stage's build time is in the row");
  const tagged = await cli(["tag", row.run, "best", "--results", results]);
  assert.equal(tagged.code, 0, tagged.stderr);
  const again = await cli(["runs", "--results", results, "--json", "--where", "tag = best"]);
  assert.equal(JSON.parse(again.stdout).length, 1, again.stderr);
  // a rerun of the same folder with another record: --set changes what it ran
  const rerun = await cli(["run", cfg, "--results", results, "--until", "preprocess"]);
  assert.equal(rerun.code, 0, rerun.stderr);
  const after = JSON.parse((await cli(["runs", "--results", results, "--json"])).stdout);
  assert.equal(after.length, 1);
  assert.notEqual(after[0].finished, row.finished);
  // rebuilt on request
  const re = await cli(["runs", "--results", results, "--json", "--reindex"]);
  assert.deepEqual(JSON.parse(re.stdout), after);
});

/** Adds a rung of `source` (same config but its iterations) as a run folder named `name`. */
async function addRung(dir: string, source: string, name: string, iterations: number) {
  const rec = JSON.parse(await Deno.readTextFile(join(source, "run.json")));
  rec.config.adversarial.iterations = iterations;
  rec.runDir = join(dir, "runs", name);
  await Deno.mkdir(rec.runDir);
  await Deno.writeTextFile(join(rec.runDir, "run.json"), JSON.stringify(rec));
}

/** `runs --json` rows of `args` (through the CLI). */
async function runsJson(dir: string, args: string[]) {
  const out = await cli(["runs", "--results", dir, "--json", ...args]);
  assert.equal(out.code, 0, out.stderr);
  return JSON.parse(out.stdout) as { run: string; rungOf: string | null }[];
}

Deno.test("a page from the index is the page of every row: order, sort, rungs, runs without a figure", async () => {
  const dir = await results(12);
  const rows = await listRuns(APP, dir);
  // one point's rungs: the same config at other iterations, named to sort before and after it
  await addRung(dir, rows[4].dir, "bench-0000-a-rung", 50);
  await addRung(dir, rows[4].dir, "zz-rung", 9000);
  // a run without figures goes last in a sorted listing
  const bare = JSON.parse(await Deno.readTextFile(join(rows[7].dir, "run.json")));
  bare.stages = [];
  await Deno.writeTextFile(join(rows[7].dir, "run.json"), JSON.stringify(bare));
  await markRunChanged(rows[7].dir);
  const views = [[], ["--sort", "frechet"], ["--sort", "classifierScore"], ["--limit", "3"], [
    "--sort",
    "dReal",
    "--limit",
    "5",
  ]];
  for (const names of [false, true]) {
    if (names) {
      // a name that sorts otherwise by locale: the index orders every entry itself
      await addRung(dir, rows[2].dir, "Upper-run", 77);
    }
    for (const view of views) {
      const paged = await runsJson(dir, view);
      // a query (here one every run matches) is answered from every row
      const everyRow = await runsJson(dir, [...view, "--where", "run ~ ''"]);
      assert.deepEqual(paged, everyRow, view.join(" "));
    }
  }
  const grouped = await runsJson(dir, []);
  const at = grouped.findIndex((r) => r.run === "zz-rung");
  assert.equal(grouped[at + 1].run, rows[4].run);
  assert.equal(grouped[at + 1].rungOf, "zz-rung");
  assert.equal(grouped[at + 2].run, "bench-0000-a-rung");
  const sorted = await runsJson(dir, ["--sort", "frechet"]);
  assert.equal(sorted.at(-1)!.run, rows[7].run);
});

Deno.test("a settled runs folder is not listed again: its time says no folder came or went", async () => {
  const dir = await results(3);
  const runs = join(dir, "runs");
  const past = new Date(Date.now() - 60_000);
  await Deno.utime(runs, past, past);
  const before = await listRuns(APP, dir);
  // a folder that comes with the time put back (no real change does that): not seen ...
  const extra = join(runs, "zz-quiet-000000000000");
  await Deno.mkdir(extra);
  await Deno.copyFile(join(before[0].dir, "run.json"), join(extra, "run.json"));
  await Deno.utime(runs, past, past);
  assert.deepEqual(names(await listRuns(APP, dir)), names(before));
  // ... until a writer's marker names it, or the folder's time moves
  await markRunChanged(extra);
  assert.ok(names(await listRuns(APP, dir)).includes("zz-quiet-000000000000"));
  await Deno.remove(before[1].dir, { recursive: true });
  assert.ok(!names(await listRuns(APP, dir)).includes(before[1].run));
  // a fresh time is not kept (a change in the same tick would not move it): listed every time
  const late = join(runs, "zz-late-000000000000");
  await Deno.mkdir(late);
  await Deno.copyFile(join(before[0].dir, "run.json"), join(late, "run.json"));
  assert.ok(names(await listRuns(APP, dir)).includes("zz-late-000000000000"));
});

Deno.test("rows held between listings follow changes, removals and a rebuilt index", async () => {
  const dir = await results(4);
  const held = new HeldRuns(APP, dir);
  const heldRows = async () => (await held.rows()).rows;
  const first = await heldRows();
  assert.equal(first.length, 4);
  assert.equal(await heldRows(), first, "nothing changed: the same rows");
  const rec = JSON.parse(await Deno.readTextFile(join(first[1].dir, "run.json")));
  rec.stages[0].summary.frechet = 4321;
  await Deno.writeTextFile(join(first[1].dir, "run.json"), JSON.stringify(rec));
  await markRunChanged(first[1].dir);
  await Deno.remove(first[3].dir, { recursive: true });
  const second = await heldRows();
  assert.deepEqual(names(second), names(first).slice(0, 3));
  assert.equal(second[1].figures.frechet, 4321);
  assert.deepEqual(plain(second), plain(await listRuns(APP, dir)));
  // the index file deleted and rebuilt, or rebuilt on request: still what the folders say
  await Deno.remove(join(dir, INDEX_FILE));
  rec.stages[0].summary.frechet = 99;
  await Deno.writeTextFile(join(first[1].dir, "run.json"), JSON.stringify(rec));
  assert.equal((await heldRows())[1].figures.frechet, 99);
  rec.stages[0].summary.frechet = 98;
  await Deno.writeTextFile(join(first[1].dir, "run.json"), JSON.stringify(rec));
  const re = await cli(["runs", "--results", dir, "--reindex"]);
  assert.equal(re.code, 0, re.stderr);
  assert.equal((await heldRows())[1].figures.frechet, 98);
});

Deno.test("the runs table shows 500 rows unless asked, and says how to see the rest", async () => {
  const dir = await results(520);
  const table = await cli(["runs", "--results", dir]);
  assert.equal(table.code, 0, table.stderr);
  const lines = table.stdout.trimEnd().split("\n");
  assert.equal(lines.filter((l) => l.startsWith("bench-")).length, 500);
  assert.match(table.stdout, /\(20 more runs: --limit N or --limit all shows them\)/);
  const all = await cli(["runs", "--results", dir, "--limit", "all"]);
  assert.equal(all.stdout.split("\n").filter((l) => l.startsWith("bench-")).length, 520);
  // programs get every row
  assert.equal((await runsJson(dir, [])).length, 520);
  const bad = await cli(["runs", "--results", dir, "--limit", "some"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--limit: a whole number of rows, 1 or more, or all; got some/);
});
