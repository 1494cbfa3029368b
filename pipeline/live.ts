/**
 * What a run in flight shows others as it goes, in its run folder's `live/`: `status.json`
 * (the run's state, pid, the stage it is on; replaced whole at each change) and one
 * `<stage>.jsonl` per stage that reports rows (a line per row, appended as the stage goes:
 * the adversarial loop's iterations, the evaluation's checkpoints) plus files a stage shows
 * early (`<stage>/...`, e.g. a checkpoint's sample grid). Readers (`deno task ui`, a sweep's
 * terminal, `tail -f`) never need the cache's layout. The rows are a view, not a result:
 * nothing computed reads them, so they are not in any key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { LiveLog, readLiveRows } from "./live.ts";
 * const dir = await Deno.makeTempDir();
 * const log = LiveLog.open(dir, "train");
 * log.row({ iteration: 1, loss: 0.5 });
 * log.row({ iteration: 2, loss: 0.4 });
 * log.close();
 * const rows = await readLiveRows(join(dir, "live", "train.jsonl"));
 * assert.deepEqual(rows.map((r) => r.iteration), [1, 2]);
 * ```
 */
import { join } from "node:path";
import { markRunChanged } from "./run_index.ts";

/** A run's live state, as `live/status.json` holds it. */
export interface LiveStatus {
  state: "running" | "done" | "failed";
  pid: number;
  started: string;
  updated: string;
  /** The stage running now (state running), or the last one. */
  stage: string | null;
  /** Every stage of the run, in order. */
  stages: string[];
  error?: string;
}

const enc = new TextEncoder();

/** How often a run refreshes its status; one older than 3 of these is a run that stopped. */
export const LIVE_HEARTBEAT_MS = 5000;

/** Rows and files a stage shows while it runs. */
export class LiveLog {
  #file: Deno.FsFile | null = null;
  #failed = false;
  private constructor(readonly dir: string, readonly stage: string) {}

  /**
   * The stage's live log in `<runDir>/live/`; its rows start afresh (an earlier run's file is
   * removed now, the new one made at the first row, so a stage that shows none leaves none).
   */
  static open(runDir: string, stage: string): LiveLog {
    const dir = join(runDir, "live");
    try {
      Deno.removeSync(join(dir, `${stage}.jsonl`));
    } catch {
      // none yet
    }
    return new LiveLog(dir, stage);
  }

  /** A log that writes nothing (tests, and where the run folder cannot take it). */
  static none(): LiveLog {
    return new LiveLog("", "");
  }

  /** Appends one row (one JSON line, written whole; `t` is the wall clock in ms). */
  row(data: Record<string, unknown>): void {
    if (!this.dir || this.#failed) return;
    try {
      if (!this.#file) {
        Deno.mkdirSync(this.dir, { recursive: true });
        this.#file = Deno.openSync(join(this.dir, `${this.stage}.jsonl`), {
          write: true,
          create: true,
          truncate: true,
        });
      }
      this.#file.writeSync(enc.encode(JSON.stringify({ t: Date.now(), ...data }) + "\n"));
    } catch {
      // a view only: a run never fails for want of it
      this.#failed = true;
      this.close();
    }
  }

  /** Writes a file others may look at early, `live/<stage>/<name>`; returns its path. */
  async file(name: string, bytes: Uint8Array): Promise<string | null> {
    if (!this.dir) return null;
    const path = join(this.dir, this.stage, name);
    try {
      await Deno.mkdir(join(this.dir, this.stage), { recursive: true });
      await Deno.writeFile(`${path}.tmp`, bytes);
      await Deno.rename(`${path}.tmp`, path);
      return path;
    } catch {
      return null;
    }
  }

  close(): void {
    try {
      this.#file?.close();
    } catch {
      // closed already
    }
    this.#file = null;
  }
}

/** Writes `live/status.json` whole (a reader never sees half of it); a failure is ignored. */
export async function writeLiveStatus(runDir: string, status: LiveStatus): Promise<void> {
  try {
    // written beside, renamed over: a reader never sees half of it
    const path = join(runDir, "live", "status.json"), tmp = `${path}.${Deno.pid}.tmp`;
    await Deno.mkdir(join(runDir, "live"), { recursive: true });
    await Deno.writeTextFile(tmp, JSON.stringify(status) + "\n");
    await Deno.rename(tmp, path);
    // a run's start and end change its row in the run index (stage changes do not: the index
    // reads a running run's folder at every listing anyway); after the status lands
    if (status.state !== "running" || status.stage === null) {
      await markRunChanged(runDir);
    }
  } catch {
    // a view only
  }
}

/** The rows of a live file (a line still being written is left out), or none. */
export async function readLiveRows(path: string): Promise<Record<string, unknown>[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return [];
  }
  const rows: Record<string, unknown>[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    try {
      rows.push(JSON.parse(line));
    } catch {
      // the last line, half written
    }
  }
  return rows;
}

/** The last complete progress row of a live file (its tail only: the file grows with the run). */
export async function lastProgressRow(path: string): Promise<Record<string, unknown> | null> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch {
    return null;
  }
  try {
    const size = (await file.stat()).size;
    const from = Math.max(0, size - 4096);
    await file.seek(from, Deno.SeekMode.Start);
    const buf = new Uint8Array(size - from);
    let got = 0;
    while (got < buf.length) {
      const n = await file.read(buf.subarray(got));
      if (n === null) break;
      got += n;
    }
    const lines = new TextDecoder().decode(buf.subarray(0, got)).split("\n").filter(Boolean);
    for (let i = lines.length - 1; i >= 0; i--) {
      try {
        const row = JSON.parse(lines[i]);
        // a progress row (an iteration, a checkpoint scored), not a file announcement
        if (typeof row.of === "number") return row;
      } catch {
        // a line cut by the tail window, or still being written
      }
    }
    return null;
  } finally {
    file.close();
  }
}

/**
 * Whether a live process holds a lock on the file at `path` (an OS lock dies with its
 * process, on this machine or over a shared disk): null where there is no such file. Needs
 * read permission only, so every command can ask.
 */
export async function lockHeld(path: string): Promise<boolean | null> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch {
    return null;
  }
  try {
    return !(await file.tryLock(true));
  } finally {
    file.close();
  }
}

/**
 * A run folder's state from its live status and its lock (which the run holds while it runs):
 * a status that says running with nobody holding the lock is an interrupted run.
 */
export async function runState(
  runDir: string,
  s: LiveStatus,
): Promise<LiveStatus["state"] | "interrupted"> {
  const state = liveState(s);
  if (state !== "running") return state;
  return (await lockHeld(join(runDir, ".lock"))) === false ? "interrupted" : "running";
}

/**
 * A run's state from its live status alone: `interrupted` when it says running but its
 * heartbeat stopped for 3 beats (a kill, a crash, a lost node); {@link runState} also asks the
 * run folder's lock, which tells at once.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { liveState } from "./live.ts";
 * const now = Date.parse("2026-01-01T00:00:30Z");
 * const status = { state: "running" as const, pid: 1, started: "", stage: "adversarial", stages: [] };
 * assert.equal(liveState({ ...status, updated: "2026-01-01T00:00:25Z" }, { now }), "running");
 * assert.equal(liveState({ ...status, updated: "2026-01-01T00:00:00Z" }, { now }), "interrupted");
 * ```
 */
export function liveState(
  s: LiveStatus,
  { now = Date.now() } = {},
): LiveStatus["state"] | "interrupted" {
  if (s.state !== "running") return s.state;
  return now - Date.parse(s.updated) > 3 * LIVE_HEARTBEAT_MS ? "interrupted" : "running";
}

/** A run folder's live status, or null. */
export async function readLiveStatus(runDir: string): Promise<LiveStatus | null> {
  try {
    return JSON.parse(await Deno.readTextFile(join(runDir, "live", "status.json")));
  } catch {
    return null;
  }
}
