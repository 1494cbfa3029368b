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

/** What makes `p` no point record (the fields readers use), or null. */
export function pointProblem(p: unknown): string | null {
  if (typeof p !== "object" || p === null || Array.isArray(p)) return "not an object";
  const r = p as Record<string, unknown>;
  if (!Number.isInteger(r.index)) return "its index is not an integer";
  if (typeof r.overrides !== "object" || r.overrides === null) {
    return "its overrides are not an object";
  }
  if (!["pending", "running", "done", "failed"].includes(r.status as string)) {
    return `its status ${JSON.stringify(r.status)} is not one a point has`;
  }
  if (r.runDir !== null && typeof r.runDir !== "string") return "its runDir is not a path";
  if (typeof r.summaries !== "object" || r.summaries === null) {
    return "its summaries are not an object";
  }
  if (typeof r.keys !== "object" || r.keys === null) return "its keys are not an object";
  return null;
}

/**
 * What makes a sweep.json no sweep record, or null; a record with bad points is still one:
 * readers skip those points (`badPoints` names them).
 */
export function sweepRecordProblem(rec: unknown): string | null {
  if (typeof rec !== "object" || rec === null || Array.isArray(rec)) return "not a sweep record";
  const r = rec as Record<string, unknown>;
  if (typeof r.name !== "string") return "its name is not a string";
  if (!Array.isArray(r.points)) return "its points are not a list";
  return null;
}

/** The points of a sweep record that are not point records, by index in the list, and why. */
export function badPoints(points: unknown[]): { at: number; problem: string }[] {
  return points.flatMap((p, at) => {
    const problem = pointProblem(p);
    return problem ? [{ at, problem }] : [];
  });
}
