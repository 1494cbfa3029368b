/**
 * The sweep's terminal while points run: every few seconds, one line naming each running
 * point's stage and progress, read from its run folder's `live/` (as `deno task ui` does), so
 * a long sweep does not sit silent until its first point ends.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeRunning } from "./watch.ts";
 * assert.equal(
 *   describeRunning([{ label: "p001", stage: "adversarial", row: { iteration: 40, of: 150 } }]),
 *   "running: p001 adversarial 40/150",
 * );
 * ```
 */
import { join } from "node:path";
import { readLiveStatus } from "../live.ts";
import type { Progress } from "../progress.ts";

/** A running point as the line shows it. */
export interface RunningPoint {
  label: string;
  stage: string | null;
  row: Record<string, unknown> | null;
}

/** The line for the running points. */
export function describeRunning(points: RunningPoint[]): string {
  const one = (p: RunningPoint) => {
    const r = p.row;
    if (!r || typeof r.of !== "number") return `${p.label} ${p.stage ?? "starting"}`;
    const what = r.kind === "checkpoint" ? ` checkpoint ${r.index}` : ` ${r.iteration}`;
    return `${p.label} ${p.stage}${what}/${r.of}`;
  };

  return `running: ${points.map(one).join(", ")}`;
}

/** The last complete progress row of a live file (its tail only: the file grows with the run). */
export async function lastRow(path: string): Promise<Record<string, unknown> | null> {
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

/** A running point's stage and latest row. */
async function pointState(label: string, runDir: string): Promise<RunningPoint> {
  const status = await readLiveStatus(runDir);
  const stage = status?.state === "running" ? status.stage : null;
  const row = stage ? await lastRow(join(runDir, "live", `${stage}.jsonl`)) : null;
  return { label, stage, row };
}

/** Watches running points; prints their line every `everyMs` while any runs. */
export function watchPoints(progress: Progress, everyMs = 10_000) {
  const running = new Map<string, string>();
  let timer: ReturnType<typeof setInterval> | undefined;
  const tick = async () => {
    const states = await Promise.all([...running].map(([l, d]) => pointState(l, d)));
    if (states.length) progress.log(describeRunning(states));
  };
  const stop = () => {
    clearInterval(timer);
    timer = undefined;
  };
  return {
    add: (label: string, runDir: string) => {
      running.set(label, runDir);
      timer ??= setInterval(tick, everyMs);
    },
    remove: (label: string) => {
      running.delete(label);
      if (!running.size) stop();
    },
    stop,
  };
}
