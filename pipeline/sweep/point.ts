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
import type { Point, PointRecord } from "../point_record.ts";
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
  /**
   * The sweep's folder: a point holds a shared lock on its `.lock` while it runs, so a reader
   * tells a running point from one whose sweep was killed (nobody holds the lock).
   */
  sweepDir?: string;
}

/** The lock file a sweep's running points hold. */
export const SWEEP_LOCK = ".lock";

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
  // the log is written as the point runs, so `tail -f` (and the ui) can follow it
  await Deno.mkdir(dirname(logPath), { recursive: true });
  const log = await Deno.open(logPath, { write: true, create: true, truncate: true });
  const child = new Deno.Command(Deno.execPath(), {
    args,
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const dec = new TextDecoder();
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    let text = "";
    for await (const chunk of stream) {
      text += dec.decode(chunk, { stream: true });
      await log.write(chunk).catch(() => 0);
    }
    return text;
  };
  const [stdout, stderr, status] = await Promise.all([
    collect(child.stdout),
    collect(child.stderr),
    child.status,
  ]);
  log.close();
  const out = { code: status.code };
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
  const lock = run.sweepDir
    ? await Deno.open(join(run.sweepDir, SWEEP_LOCK), { write: true, create: true })
    : null;
  await lock?.lock(false);
  let res: Awaited<ReturnType<typeof runPoint>>;
  try {
    res = await runPoint({ ...run, point: r.overrides });
  } finally {
    lock?.close();
  }
  r.seconds = (performance.now() - t0) / 1000;
  if (res.ok) {
    // a run's last line is its report (a file in the run folder) or, without one, the folder
    const isFile = (await Deno.stat(res.lastLine).catch(() => null))?.isFile;
    r.runDir = isFile ? dirname(res.lastLine) : res.lastLine;
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
