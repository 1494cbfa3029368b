/**
 * `deno task gc [--results DIR] [--dry-run] [--keep-runs N]`: removes the cache entries no
 * kept run refers to, and temporary folders and lock files nobody holds, printing what it
 * frees, like `dvc gc`. An entry another process holds (a run using it, a writer building
 * it) is never removed: gc takes each entry's lock exclusively first, and runs hold theirs.
 * Work folders (an interrupted run's checkpoints) are kept: the run resumes from them.
 *
 * @example
 * ```ts
 * import { gcCache } from "./gc_cli.ts";
 * import assert from "node:assert/strict";
 * const r = await gcCache(await Deno.makeTempDir(), { dryRun: true });
 * assert(r.removed.length === 0);
 * ```
 */
import { join } from "node:path";
import { parseCommand } from "./args.ts";
import { UsageError } from "./errors.ts";
import { recordProblem } from "./run_record.ts";
import { checkResultsDir, listFiles, Store } from "./store.ts";

/** What {@link gcCache} did (or would do, with `dryRun`). */
export interface GcReport {
  removed: { stage: string; key: string; bytes: number }[];
  temps: string[];
  locks: string[];
  runsRemoved: string[];
  /** The run folders kept, and why. */
  runsKept: { dir: string; why: string }[];
  kept: number;
  inUse: string[];
  bytes: number;
  /** Records that could not be read, collected past with --force. */
  unreadable: { file: string; problem: string }[];
}

async function sizeOf(dir: string): Promise<number> {
  let n = 0;
  // lstat: a run's artifacts/ links count as links, and one whose entry is gone still counts
  for (const f of await listFiles(dir)) n += (await Deno.lstat(join(dir, f))).size;
  return n;
}

/** A run folder's records: the entries each names, and those that cannot be read as one. */
async function readRecords(runDir: string): Promise<{
  refs: { stage: string; key: string }[][];
  unreadable: { file: string; problem: string }[];
}> {
  const refs: { stage: string; key: string }[][] = [];
  const unreadable: { file: string; problem: string }[] = [];
  const files = [join(runDir, "run.json")];
  try {
    for await (const e of Deno.readDir(join(runDir, "records"))) {
      if (e.name.endsWith(".json")) files.push(join(runDir, "records", e.name));
    }
  } catch { /* no records folder */ }
  for (const file of files) {
    let text: string;
    try {
      text = await Deno.readTextFile(file);
    } catch {
      continue; // a run folder whose record is not written yet
    }
    try {
      const rec = JSON.parse(text);
      const problem = recordProblem(rec);
      if (problem) unreadable.push({ file, problem });
      else refs.push(rec.stages);
    } catch {
      unreadable.push({ file, problem: "not valid JSON" });
    }
  }
  return { refs, unreadable };
}

/**
 * Raised when a run's record cannot be read: the entries it names cannot be known, so gc
 * removes nothing unless told to collect without it.
 */
export class UnreadableRecords extends Error {
  override readonly name = "UnreadableRecords";
  constructor(readonly records: { file: string; problem: string }[]) {
    super(
      `${records[0].file}: ${records[0].problem}${
        records.length > 1 ? ` (and ${records.length - 1} more records)` : ""
      }; the cache entries it names cannot be known, so nothing was removed: fix or delete the record, or run gc --force to collect as if it named none`,
    );
  }
}

/** What one collection knows as it goes. */
interface Gc {
  store: Store;
  report: GcReport;
  dryRun: boolean;
}

/** Runs the removal of `path` under a lock's release, unless a dry run. */
async function removeUnder(
  gc: Gc,
  path: string,
  release: () => void,
  { mayFail = false } = {},
): Promise<void> {
  try {
    if (!gc.dryRun) {
      await Deno.remove(path, { recursive: true }).catch((e) => {
        if (!mayFail) throw e;
      });
    }
  } finally {
    release();
  }
}

/** A run folder as gc sees it. */
interface RunFolder {
  dir: string;
  finished: string;
  /** Finished with every stage, successfully. */
  complete: boolean;
}

/** The run folders, latest finished first. */
async function runFolders(results: string): Promise<RunFolder[]> {
  const runs: RunFolder[] = [];
  try {
    for await (const e of Deno.readDir(join(results, "runs"))) {
      if (!e.isDirectory) continue;
      const dir = join(results, "runs", e.name);
      try {
        const rec = JSON.parse(await Deno.readTextFile(join(dir, "run.json")));
        const complete = rec.status === "ok" && rec.complete !== false;
        runs.push({ dir, finished: rec.finished ?? "", complete });
      } catch {
        runs.push({ dir, finished: "", complete: false }); // being written, or a crash's leftover
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return runs.sort((a, b) => b.finished.localeCompare(a.finished));
}

/**
 * Keeps every run (`keepRuns` undefined), or the `keepRuns` most recent complete ones; removes
 * the other run folders (partial `--until` runs, failed ones, and folders a crash left without a
 * record), except one being written (it holds a shared lock on its `.lock`). Returns the kept
 * ones.
 */
async function pruneRuns(gc: Gc, results: string, keepRuns?: number) {
  const runs = await runFolders(results);
  const kept: RunFolder[] = [];
  let completes = 0;
  for (const r of runs) {
    const why = keepRuns === undefined
      ? "every run is kept without --keep-runs"
      : r.complete && completes++ < keepRuns
      ? `one of the ${keepRuns} most recent complete runs`
      : null;
    if (why) {
      kept.push(r);
      gc.report.runsKept.push({ dir: r.dir, why });
      continue;
    }
    const release = await tryExclusiveFile(join(r.dir, ".lock"));
    if (!release) {
      kept.push(r);
      gc.report.inUse.push(`run ${r.dir}`);
      continue;
    }
    gc.report.runsRemoved.push(r.dir);
    await removeUnder(gc, r.dir, release);
  }
  return kept;
}

/** Removes a stage's entries no kept run refers to and nobody holds; returns what went. */
async function pruneEntries(gc: Gc, stage: string, referenced: Set<string>): Promise<Set<string>> {
  const gone = new Set<string>();
  for (const key of await gc.store.keys(stage)) {
    if (referenced.has(`${stage}/${key}`)) {
      gc.report.kept++;
      continue;
    }
    const release = await gc.store.tryExclusive(stage, key);
    if (!release) {
      gc.report.inUse.push(`${stage}/${key}`);
      continue;
    }
    const bytes = await sizeOf(gc.store.dir(stage, key));
    gc.report.removed.push({ stage, key, bytes });
    gc.report.bytes += bytes;
    gone.add(key);
    await removeUnder(gc, gc.store.dir(stage, key), release);
  }
  return gone;
}

/**
 * Removes a stage's temporary folders whose writer is gone (nobody holds their key's lock),
 * then the lock files of keys with nothing left (no entry, temporary or work folder).
 */
async function pruneLeftovers(gc: Gc, stage: string, gone: Set<string>): Promise<void> {
  const parent = join(gc.store.root, stage);
  const names: string[] = [];
  for await (const e of Deno.readDir(parent)) names.push(e.name);
  // every key that was ever built has a lock file (taken before its temporary folder)
  const lockKeys = names.filter((n) => n.startsWith(".lock-")).map((n) => n.slice(6));
  for (const n of names.filter((n) => n.startsWith(".tmp-") || n.includes(".old-"))) {
    const short = n.match(/[0-9a-f]{16,64}/)?.[0] ?? "";
    const key = short ? lockKeys.find((k) => k.startsWith(short)) : undefined;
    const release = key ? await gc.store.tryExclusive(stage, key) : null;
    if (!release) continue;
    gc.report.bytes += await sizeOf(join(parent, n));
    gc.report.temps.push(join(parent, n));
    gone.add(n);
    await removeUnder(gc, join(parent, n), release);
  }
  const present = names.filter((n) => !gone.has(n));
  for (const key of lockKeys) {
    const left = present.some((n) =>
      n === key || n === `.work-${key}` || n.startsWith(`.tmp-${key.slice(0, 16)}`)
    );
    if (left) continue;
    const release = await gc.store.tryExclusive(stage, key);
    if (!release) continue;
    gc.report.locks.push(join(parent, `.lock-${key}`));
    // a lock file that will not go is harmless: the next gc tries again
    await removeUnder(gc, join(parent, `.lock-${key}`), release, { mayFail: true });
  }
}

/** Collects garbage in the cache under `results`. */
export async function gcCache(
  results: string,
  { dryRun = false, keepRuns, force = false }: {
    dryRun?: boolean;
    keepRuns?: number;
    /** Collect even when a record cannot be read (its entries count as named by none). */
    force?: boolean;
  } = {},
): Promise<GcReport> {
  // every run's records, read once: checked before anything goes, used for the kept runs below
  const records = new Map<string, Awaited<ReturnType<typeof readRecords>>>();
  for (const r of await runFolders(results)) records.set(r.dir, await readRecords(r.dir));
  const unreadable = [...records.values()].flatMap((r) => r.unreadable);
  if (unreadable.length && !force) throw new UnreadableRecords(unreadable);
  const gc: Gc = {
    store: new Store(results),
    dryRun,
    report: {
      removed: [],
      temps: [],
      locks: [],
      runsRemoved: [],
      runsKept: [],
      kept: 0,
      inUse: [],
      bytes: 0,
      unreadable,
    },
  };
  const kept = await pruneRuns(gc, results, keepRuns);
  const referenced = new Set<string>();
  for (const r of kept) {
    for (const rec of (records.get(r.dir) ?? await readRecords(r.dir)).refs) {
      for (const s of rec) referenced.add(`${s.stage}/${s.key}`);
    }
  }
  for (const stage of await gc.store.stages()) {
    await pruneLeftovers(gc, stage, await pruneEntries(gc, stage, referenced));
  }
  return gc.report;
}

/** An exclusive lock on `path` if nobody holds it (a missing file counts as free), or null. */
async function tryExclusiveFile(path: string): Promise<(() => void) | null> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { write: true });
  } catch {
    return () => {};
  }
  if (!(await file.tryLock(true))) {
    file.close();
    return null;
  }
  return () => file.close();
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

const GC_USAGE = `usage: deno task gc [--results DIR] [--dry-run] [--keep-runs N] [--force]
  removes cache entries no kept run refers to, and leftovers nobody holds (never what a run in
  flight uses)
  --keep-runs N   keep the N most recent complete runs (and any being written); remove the other
                  run folders, partial (--until) and failed runs included; default: keep all
  --dry-run       say what would go; remove nothing
  --force         collect even when a run's record cannot be read (gc refuses without it: the
                  entries such a record names cannot be known)`;

/** `deno task gc`; returns the exit code. */
export async function gcCommand(args: string[]): Promise<number> {
  const parsed = parseCommand<
    { results: string; "dry-run": boolean; "keep-runs"?: string; force: boolean }
  >(
    args,
    GC_USAGE,
    {
      results: { type: "string", default: "results" },
      "dry-run": { type: "boolean", default: false },
      "keep-runs": { type: "string" },
      force: { type: "boolean", default: false },
    },
  );
  if (!parsed) return 0;
  const { values } = parsed;
  await checkResultsDir(values.results, {
    write: !values["dry-run"],
    mustExist: true,
    usage: GC_USAGE,
  });
  const keepRuns = values["keep-runs"] === undefined ? undefined : Number(values["keep-runs"]);
  if (keepRuns !== undefined && (!Number.isInteger(keepRuns) || keepRuns < 0)) {
    throw new UsageError(`--keep-runs ${values["keep-runs"]}: expected an integer >= 0`, GC_USAGE);
  }
  const dryRun = values["dry-run"];
  const r = await gcCache(values.results, { dryRun, keepRuns, force: values.force });
  const verb = dryRun ? "would remove" : "removed";
  for (const u of r.unreadable) {
    console.log(`collected as if ${u.file} named no entry (--force): ${u.problem}`);
  }
  if (keepRuns !== undefined) {
    for (const k of r.runsKept) console.log(`keeping run ${k.dir}: ${k.why}`);
  }
  for (const d of r.runsRemoved) console.log(`${verb} run ${d}`);
  for (const e of r.removed) {
    console.log(`${verb} ${e.stage}/${e.key.slice(0, 12)} (${mb(e.bytes)})`);
  }
  for (const t of r.temps) console.log(`${verb} temporary ${t}`);
  for (const u of r.inUse) {
    const what = u.startsWith("run ") ? u : u.slice(0, u.indexOf("/") + 13);
    console.log(`kept ${what}: in use by another process`);
  }
  console.log(
    `${verb} ${r.removed.length} entries, ${r.temps.length} temporary folders and ${r.locks.length} lock files: ${
      mb(r.bytes)
    }; kept ${r.kept} entries that kept runs refer to${
      r.inUse.length ? ` and ${r.inUse.length} in use` : ""
    }`,
  );
  return 0;
}
