/**
 * `deno task runs`: a table of the runs in a results folder (name, config hash, the
 * parameters that differ between them, final figures, status, wall time), like
 * `dvc exp show`; `deno task diff RUN_A RUN_B`: their config and figure differences.
 *
 * @example
 * ```ts
 * import { differingPaths, flatten } from "./runs_cli.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(flatten({ a: { b: 1, c: [2] } }), { "a.b": 1, "a.c": [2] });
 * assert.deepEqual(differingPaths([{ "a.b": 1, x: 1 }, { "a.b": 2, x: 1 }]), ["a.b"]);
 * ```
 */
import { basename, join } from "node:path";
import type { App } from "./app.ts";
import { parseCommand } from "./args.ts";
import { UsageError } from "./errors.ts";
import { canonicalJson } from "./hash.ts";
import type { RunRecord } from "./runner.ts";

/** A config as `path -> leaf value` (arrays are leaves). */
export function flatten(v: unknown, prefix = "", out: Record<string, unknown> = {}) {
  if (typeof v === "object" && v !== null && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
  } else out[prefix] = v;
  return out;
}

/** The paths whose values are not the same in every one of `flats`. */
export function differingPaths(flats: Record<string, unknown>[]): string[] {
  const paths = new Set(flats.flatMap((f) => Object.keys(f)));
  return [...paths].filter((p) => new Set(flats.map((f) => canonicalJson(f[p] ?? null))).size > 1)
    .sort();
}

/** A run as the table shows it. */
export interface RunRow {
  run: string;
  dir: string;
  configHash: string;
  status: string;
  seconds: number;
  finished: string | null;
  config: Record<string, unknown>;
  figures: Record<string, number | undefined>;
}

/** A run folder's row from its latest record, or null when it has none yet. */
async function runRow(app: App, dir: string): Promise<RunRow | null> {
  let rec: RunRecord;
  try {
    rec = JSON.parse(await Deno.readTextFile(join(dir, "run.json")));
  } catch {
    return null; // a run folder without a record yet
  }
  const summaries = Object.fromEntries(
    rec.stages.filter((s) => s.summary).map((s) => [s.stage, s.summary]),
  );
  return {
    run: basename(dir),
    dir,
    configHash: rec.configHash.slice(0, 12),
    status: rec.status,
    seconds: rec.seconds,
    finished: rec.finished,
    config: flatten(rec.config),
    figures: app.figures(summaries),
  };
}

/** Every run folder's latest record under `results`. */
export async function listRuns(app: App, results: string): Promise<RunRow[]> {
  const rows: RunRow[] = [];
  const root = join(results, "runs");
  try {
    for await (const e of Deno.readDir(root)) {
      if (!e.isDirectory) continue;
      const row = await runRow(app, join(root, e.name));
      if (row) rows.push(row);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return rows.sort((a, b) => a.run.localeCompare(b.run));
}

const show = (v: unknown) =>
  typeof v === "number" ? String(Number(v.toPrecision(4))) : JSON.stringify(v);

function table(head: string[], body: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(w[i])).join("  ").trimEnd();
  return [line(head), line(w.map((n) => "-".repeat(n))), ...body.map(line)].join("\n");
}

const RUNS_USAGE = `usage: deno task runs [--results DIR] [--sort FIGURE] [--json]
  a table of the runs in a results folder: the parameters that differ, the final figures, status
  --sort FIGURE   order by a figure (frechet, classifierScore, ...; best first)
  --json          the rows as JSON`;

const DIFF_USAGE = `usage: deno task diff RUN_A RUN_B [--results DIR]
  the config and figure differences of two runs: run folders (from any results folder), or run
  names or name prefixes under --results`;

/** `deno task runs`; returns the exit code. */
export async function runsCommand(app: App, args: string[]): Promise<number> {
  const parsed = parseCommand<{ results: string; sort?: string; json: boolean }>(
    args,
    RUNS_USAGE,
    {
      results: { type: "string", default: "results" },
      sort: { type: "string" },
      json: { type: "boolean", default: false },
    },
  );
  if (!parsed) return 0;
  const { values } = parsed;
  const rows = await listRuns(app, values.results);
  const metrics = [...new Set(rows.flatMap((r) => Object.keys(r.figures)))];
  if (values.sort !== undefined) {
    const m = values.sort;
    if (!metrics.includes(m) && rows.length) {
      throw new UsageError(
        `--sort ${m}: no such figure; figures: ${metrics.join(", ")}`,
        RUNS_USAGE,
      );
    }
    const higher = app.sweep.higherIsBetter.includes(m);
    rows.sort((a, b) => {
      const x = a.figures[m], y = b.figures[m];
      if (x === undefined || y === undefined) return x === undefined ? 1 : -1;
      return higher ? y - x : x - y;
    });
  }
  const params = differingPaths(rows.map((r) => r.config)).filter((p) => p !== "name");
  if (values.json) {
    console.log(JSON.stringify(
      rows.map((r) => ({
        run: r.run,
        configHash: r.configHash,
        params: Object.fromEntries(params.map((p) => [p, r.config[p]])),
        figures: r.figures,
        status: r.status,
        seconds: r.seconds,
      })),
      null,
      2,
    ));
    return 0;
  }
  if (!rows.length) {
    console.log(`no runs in ${join(values.results, "runs")}`);
    return 0;
  }
  console.log(table(
    ["run", "config", ...params, ...metrics, "status", "time"],
    rows.map((r) => [
      r.run,
      r.configHash,
      ...params.map((p) => show(r.config[p] ?? null)),
      ...metrics.map((m) => (r.figures[m] === undefined ? "" : show(r.figures[m]))),
      r.status,
      `${r.seconds.toFixed(0)}s`,
    ]),
  ));
  return 0;
}

/**
 * A run by its folder (a path, from any results folder), or by its name or a name prefix
 * under `results`; a usage error listing the runs when there is none.
 */
export async function findRun(
  app: App,
  results: string,
  x: string,
  usage?: string,
): Promise<RunRow> {
  const direct = x.includes("/") ? await runRow(app, x) : null;
  if (direct) return direct;
  const rows = await listRuns(app, results);
  const r = rows.find((r) => r.run === basename(x) || r.dir === x) ??
    rows.find((r) => r.run.startsWith(basename(x)));
  if (!r) {
    throw new UsageError(
      `${x}: no such run in ${join(results, "runs")}; runs: ${
        rows.map((r) => r.run).join(", ") || "none"
      }`,
      usage,
    );
  }
  return r;
}

/**
 * `deno task diff RUN_A RUN_B`: run folders (by path, from any results folder), or their
 * names or name prefixes under --results.
 */
export async function diffCommand(app: App, args: string[]): Promise<number> {
  const parsed = parseCommand<{ results: string }>(args, DIFF_USAGE, {
    results: { type: "string", default: "results" },
  }, { positionals: true });
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  if (positionals.length !== 2) {
    throw new UsageError(`expected two runs, got ${positionals.length}`, DIFF_USAGE);
  }
  const find = (x: string) => findRun(app, values.results, x, DIFF_USAGE);
  const [a, b] = [await find(positionals[0]), await find(positionals[1])];
  console.log(`${a.run} -> ${b.run}`);
  const paths = differingPaths([a.config, b.config]).filter((p) => p !== "name");
  console.log(paths.length ? "config:" : "config: the same");
  for (const p of paths) {
    console.log(`  ${p}: ${show(a.config[p] ?? null)} -> ${show(b.config[p] ?? null)}`);
  }
  const metrics = [...new Set([...Object.keys(a.figures), ...Object.keys(b.figures)])];
  if (metrics.length) console.log("figures:");
  for (const m of metrics) {
    const x = a.figures[m], y = b.figures[m];
    const delta = x !== undefined && y !== undefined
      ? ` (${y - x >= 0 ? "+" : ""}${show(y - x)})`
      : "";
    console.log(
      `  ${m}: ${x === undefined ? "-" : show(x)} -> ${y === undefined ? "-" : show(y)}${delta}`,
    );
  }
  return 0;
}
