/**
 * What a sweep records per point in sweep.json: the types the executors, the halving search
 * and an application's sweep report share (no imports, so anything may use them).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { PointRecord } from "./point_record.ts";
 * const r: PointRecord = {
 *   index: 0, overrides: { seed: 1 }, status: "pending", runDir: null, error: null,
 *   seconds: null, summaries: {}, keys: {},
 * };
 * assert.equal(r.status, "pending");
 * ```
 */

/** One point: overrides by config path. */
export type Point = Record<string, unknown>;

/** One point's line in sweep.json. */
export interface PointRecord {
  index: number;
  overrides: Point;
  status: "pending" | "running" | "done" | "failed";
  runDir: string | null;
  error: string | null;
  seconds: number | null;
  /** The summaries of each stage from the point's run record. */
  summaries: Record<string, unknown>;
  keys: Record<string, string>;
  /** The point's log (one per sweep process, so two sweeps never write the same file). */
  log?: string;
  /** Halving: the figure at each rung the point finished (null where it did not get there). */
  rungFigures?: (number | null)[];
  /** Halving: why the point stopped where it did. */
  stopped?: string;
}
