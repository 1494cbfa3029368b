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
import { lastProgressRow, readLiveStatus } from "../live.ts";
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

/** A running point's stage and latest row. */
async function pointState(label: string, runDir: string): Promise<RunningPoint> {
  const status = await readLiveStatus(runDir);
  const stage = status?.state === "running" ? status.stage : null;
  const row = stage ? await lastProgressRow(join(runDir, "live", `${stage}.jsonl`)) : null;
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
