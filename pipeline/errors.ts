/**
 * Error classes the CLI maps to exit codes: a {@link ConfigError} or {@link UsageError}
 * exits 2, a {@link StageError} or {@link DataError} exits 1. Each message is one line that
 * names the thing at fault and, where there is one, the fix.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConfigError } from "./errors.ts";
 * const e = new ConfigError("train.batchSize: expected an integer >= 1, got 0");
 * assert(e.exitCode === 2);
 * ```
 */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly exitCode = 2;
  /** The config field at fault (`adversarial.batchSize`) and what is wrong, when known. */
  readonly field?: { path: string; problem: string };
  constructor(message: string, field?: { path: string; problem: string }) {
    super(message);
    this.field = field;
  }
}

/** Bad command-line usage (unknown flag, missing argument). Exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
  readonly exitCode = 2;
  /** The usage of the command at fault (printed after the error; default: `run`'s). */
  readonly usage?: string;
  constructor(message: string, usage?: string) {
    super(message);
    this.usage = usage;
  }
}

/** Input data that cannot be used: corrupt, truncated, wrong checksum, unreachable. Exit 1. */
export class DataError extends Error {
  override readonly name = "DataError";
  readonly exitCode = 1;
}

/** A stage that failed while running (NaN loss, missing backend, disk full). Exit 1. */
export class StageError extends Error {
  override readonly name = "StageError";
  readonly exitCode = 1;
}

/** The exit code for any thrown value: 2 for config/usage, 1 otherwise. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof ConfigError || err instanceof UsageError) return 2;
  return 1;
}

/** Whether an error (or its message) says the disk is full. */
export function isDiskFull(err: unknown): boolean {
  const msg = err instanceof Error ? err.message : String(err);
  return /No space left on device|ENOSPC|os error 28/i.test(msg);
}

/** One line for the user: the message, without a stack, with known OS errors explained. */
export function describeError(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return `file not found: ${err.message}`;
  if (err instanceof Error) {
    const msg = err.message.split("\n")[0];
    if (isDiskFull(err)) {
      return `disk full: ${msg} (free some space, or point --results at another disk)`;
    }
    if (err instanceof Deno.errors.PermissionDenied) return `permission denied: ${msg}`;
    return msg;
  }
  return String(err);
}
