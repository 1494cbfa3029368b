/**
 * Ctrl-C handling in one place: the command line installs one SIGINT listener, and long
 * waits (a Slurm job) add a hook that runs first, to cancel or explain before the exit.
 *
 * @example
 * ```ts
 * import { onInterrupt } from "./interrupt.ts";
 * import assert from "node:assert/strict";
 * import { runInterruptHooks } from "./interrupt.ts";
 * const stop = onInterrupt(() => true); // e.g. "the job keeps running; not exiting"
 * assert.equal(runInterruptHooks(), true);
 * stop();
 * assert.equal(runInterruptHooks(), false, "removed: Ctrl-C exits again");
 * ```
 */

const hooks: (() => boolean)[] = [];

/**
 * Adds a hook run on Ctrl-C before the process exits; a hook that returns true keeps the
 * process alive. Returns a function that removes it.
 */
export function onInterrupt(hook: () => boolean): () => void {
  hooks.push(hook);
  return () => {
    const i = hooks.indexOf(hook);
    if (i >= 0) hooks.splice(i, 1);
  };
}

/** Runs the hooks, newest first; returns whether one asked to keep running. */
export function runInterruptHooks(): boolean {
  let keep = false;
  for (const h of [...hooks].reverse()) keep = h() || keep;
  return keep;
}
