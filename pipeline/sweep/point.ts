/**
 * One point of a sweep, run: the application's CLI in a subprocess with the point's
 * overrides, its log kept, and its record filled from the run's run.json. Every executor runs
 * points through here.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RUN_PERMISSIONS } from "./point.ts";
 * assert(RUN_PERMISSIONS.includes("--allow-run=git"));
 * ```
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeFileAtomic } from "../store.ts";
import type { Point, PointRecord } from "./record.ts";
import { overridesOf } from "./spec.ts";

/** Reads JSON, or null when the file is missing or not JSON. */
export async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch {
    return null;
  }
}

/** The permissions `deno task run` grants (deno.json), for running the CLI in a subprocess. */
export const RUN_PERMISSIONS: readonly string[] = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-net",
  "--allow-ffi",
  "--allow-sys",
  "--allow-run=git",
];

/**
 * The permissions `deno task sweep` grants (deno.json): a run's, and starting processes (each
 * point is one). A Slurm task runs with these.
 */
export const SWEEP_PERMISSIONS: readonly string[] = RUN_PERMISSIONS.map((p) =>
  p === "--allow-run=git" ? "--allow-run" : p
);

/** Where and how a point runs. */
export interface PointRun {
  /** The module URL (or path) of the application's command line. */
  entry: string;
  /** The sweep's base config. */
  basePath: string;
  results: string;
  point: Point;
  /** The point's run name. */
  name: string;
  /** Where its log goes. */
  logPath: string;
  backend?: string;
}

/** Runs one point as a CLI subprocess; returns its status and the last line (the path). */
export async function runPoint(
  { entry, basePath, point, name, results, logPath, backend }: PointRun,
): Promise<{ ok: boolean; lastLine: string; error: string | null }> {
  const cli = entry.startsWith("file:") ? fileURLToPath(entry) : entry;
  const args = [
    "run",
    ...RUN_PERMISSIONS,
    cli,
    "run",
    basePath,
    ...overridesOf(point).flatMap((o) => ["--set", o]),
    "--set",
    `name=${name}`,
    "--results",
    results,
    ...(backend ? ["--backend", backend] : []),
  ];
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  const stdout = dec.decode(out.stdout), stderr = dec.decode(out.stderr);
  await Deno.mkdir(dirname(logPath), { recursive: true });
  await writeFileAtomic(logPath, stderr + stdout);
  const lastLine = stdout.trim().split("\n").at(-1) ?? "";
  const error = stderr.split("\n").find((l) => l.startsWith("error: "))?.slice(7) ?? null;
  return {
    ok: out.code === 0,
    lastLine,
    error: out.code === 0 ? null : error ?? `exit ${out.code}`,
  };
}

/**
 * Runs one point through the application's CLI and fills its record from the run (status,
 * run folder, stage keys and summaries, or the error). Both executors use it.
 */
export async function runAndRecord(
  run: Omit<PointRun, "point">,
  r: PointRecord,
): Promise<void> {
  const t0 = performance.now();
  r.log = run.logPath;
  const res = await runPoint({ ...run, point: r.overrides });
  r.seconds = (performance.now() - t0) / 1000;
  if (res.ok) {
    r.runDir = res.lastLine.endsWith("report.html") ? dirname(res.lastLine) : res.lastLine;
    const rec = await readJson<{ stages: { stage: string; key: string; summary?: unknown }[] }>(
      join(r.runDir, "run.json"),
    );
    for (const st of rec?.stages ?? []) {
      r.keys[st.stage] = st.key;
      if (st.summary) r.summaries[st.stage] = st.summary;
    }
    r.status = "done";
    r.error = null;
  } else {
    r.status = "failed";
    r.error = res.error;
  }
}
