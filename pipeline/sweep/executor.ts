/**
 * The executor seam: what the sweep code asks of whatever runs its points. `local` runs them
 * here as subprocesses, `--jobs` at once ({@link localExecutor}); the Slurm executor
 * (`slurm.ts`) submits them to a cluster. Both fill the same point records.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { localExecutor } from "./executor.ts";
 * const local = localExecutor({ jobs: 3 });
 * assert.equal(local.slots, 3);
 * ```
 */
import { join } from "node:path";
import { Progress } from "../progress.ts";
import { runAndRecord } from "./point.ts";
import { pointLine, pointName, pointRunDir, type PreparedSweep } from "./prepared.ts";
import { watchPoints } from "./watch.ts";
import type { PointRecord } from "../point_record.ts";

/** Runs a sweep's points. */
export interface Executor {
  /**
   * Runs every point not done yet and fills their records; false when it returned before
   * they finished (a detached cluster job).
   */
  runAll(s: PreparedSweep): Promise<boolean>;
  /**
   * Runs one point as `at` says (a halving rung: the point with its length overridden) and
   * fills `at` from the run; `tag` tells the rung's logs apart.
   */
  runOne(s: PreparedSweep, at: PointRecord, name: string, tag: string): Promise<void>;
  /** How many runs it keeps in flight at once. */
  readonly slots: number;
  /** Ends what a search started (interrupt handlers). */
  close(): void;
}

/** The point-run settings every run of a sweep shares. */
export const pointRunOf = (s: PreparedSweep, backend?: string) => ({
  entry: s.app.entry,
  basePath: s.sweep.basePath,
  results: s.results,
  backend,
  sweepDir: s.dir,
});

/** Runs points here, `jobs` processes at once. */
export function localExecutor({ jobs, backend }: { jobs: number; backend?: string }): Executor {
  const watcher = watchPoints(new Progress());
  return {
    slots: jobs,
    runAll: async (s) => {
      try {
        await runLocal(s, jobs, backend, watcher);
      } finally {
        watcher.stop();
      }
      return true;
    },
    runOne: async (s, at, name, tag) => {
      const logPath = join(s.dir, "logs", `${name}.${tag}.${Deno.pid}.log`);
      const label = `${name} (${tag})`;
      watcher.add(label, pointRunDir(s, at, backend));
      try {
        await runAndRecord({ ...pointRunOf(s, backend), name, logPath }, at);
      } finally {
        watcher.remove(label);
      }
    },
    close: () => watcher.stop(),
  };
}

async function runLocal(
  s: PreparedSweep,
  jobs: number,
  backend: string | undefined,
  watcher: ReturnType<typeof watchPoints>,
): Promise<void> {
  const progress = new Progress();
  const todo = s.records.filter((r) => r.status !== "done");
  if (todo.length < s.records.length) {
    progress.log(`${s.records.length - todo.length} points already done; running ${todo.length}`);
  }
  await Deno.mkdir(join(s.dir, "logs"), { recursive: true });
  let next = 0, finished = 0;
  const worker = async () => {
    while (next < todo.length) {
      const r = todo[next++];
      r.status = "running";
      // the run folder now, so watchers (the ui, this terminal) can follow the point
      r.runDir = pointRunDir(s, r, backend);
      await s.save();
      const name = pointName(s, r);
      const logPath = join(s.dir, "logs", `${name}.${Deno.pid}.log`);
      watcher.add(name, r.runDir);
      try {
        await runAndRecord({ ...pointRunOf(s, backend), name, logPath }, r);
      } finally {
        watcher.remove(name);
      }
      finished++;
      progress.log(`[${finished}/${todo.length}] ${pointLine(s, r)}`);
      await s.save();
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, todo.length) }, worker));
}
