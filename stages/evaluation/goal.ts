/**
 * The lecture's hope made measurable: over the last tenth of the run the police
 * says about 0.5 to held-out real digits and to fresh fakes, and the fakes are good digits
 * in fair shares. Every run's report and evaluate summary say how far it is from each mark.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { goalMarks, tailFrechet } from "./goal.ts";
 * const row = (iteration: number | "final", dReal: number, dFake: number) => ({
 *   iteration, dReal, dFake, frechet: 20, classifierScore: 9, classesCovered: 10,
 *   klToUniform: 0, outOfRangeFraction: 0, classHistogram: new Array(10).fill(0.1),
 * });
 * const g = goalMarks({
 *   reference: { frechet: 10 },
 *   checkpoints: [row(450, 0.9, 0.1), row(500, 0.55, 0.45), row("final", 0.55, 0.45)],
 * });
 * assert.equal(g.met, 5);
 * assert.equal(g.miss, 0);
 * // the rank metric for halving: the mean distance over the second half (300 and 400)
 * const fd = (iteration: number | "final", frechet: number) => ({ ...row(iteration, 0.5, 0.5), frechet });
 * assert.equal(tailFrechet([fd(100, 90), fd(200, 10), fd(300, 40), fd(400, 20), fd("final", 20)]), 30);
 * ```
 */
import type { CheckpointMetrics } from "../vocabulary.ts";

/** The five marks. */
export const GOAL = {
  /** The share of the run, at its end, whose checkpoints the D marks average over. */
  window: 0.1,
  /** D(real) and D(fake) within this of 0.5. */
  dTolerance: 0.1,
  minClassifierScore: 8,
  classShare: [0.05, 0.15] as const,
  /** Frechet distance at the best checkpoint within this multiple of the real-vs-real floor. */
  frechetFactor: 3,
} as const;

/** The marks, by id: every table and mean takes a mark by its id, never by its place. */
export type MarkId = "dReal" | "dFake" | "classifierScore" | "classShares" | "frechet";

/** One mark: what was measured, the target, and how far short it falls (0 when met). */
export interface GoalMark {
  id: MarkId;
  name: string;
  value: number;
  target: string;
  met: boolean;
  /** How far outside the target, in the mark's units (0 when met). */
  short: number;
  /** `short` on a common scale, for ranking: 1 is a wide miss. */
  miss: number;
}

/** What the marks read: the evaluate stage's checkpoint rows and its real-data reference. */
export interface GoalInput {
  /**
   * The real-vs-real figures, and the Frechet mark's allowance as a multiple of that floor
   * (the evaluator's: 3 for the MLP, 9 for the conv net; GOAL.frechetFactor when absent).
   */
  reference: { frechet: number; frechetFactor?: number };
  checkpoints: CheckpointMetrics[];
}

/**
 * The checkpoints in the last `share` of the run (iteration > last x (1 - share)); the final
 * row alone when none falls there. Averages over it steady a figure that swings between
 * checkpoints.
 */
export function lastShare(checkpoints: CheckpointMetrics[], share: number): CheckpointMetrics[] {
  const numbered = checkpoints.filter((c) => typeof c.iteration === "number");
  const last = numbered.length ? (numbered.at(-1)!.iteration as number) : 0;
  const inWindow = numbered.filter((c) => (c.iteration as number) > last * (1 - share));
  return inWindow.length ? inWindow : [checkpoints.at(-1)!];
}

/** The share of a run, at its end, whose mean Frechet distance is `tailFrechet`. */
export const TAIL_SHARE = 0.5;

/**
 * The mean Frechet distance over the checkpoints in the second half of the run: the rank
 * metric for halving. A GAN's distance swings by tens between checkpoints 30 iterations
 * apart, more than the gap between good settings, so the final one ranks settings by luck.
 */
export function tailFrechet(checkpoints: CheckpointMetrics[]): number {
  // e.g. checkpoints 100..400 and final: the mean over 300 and 400 (past the half, 200)
  const w = lastShare(checkpoints, TAIL_SHARE);
  return w.reduce((s, c) => s + c.frechet, 0) / w.length;
}

/** A D mark: `v` within the tolerance of 0.5. */
function dMark(id: "dReal" | "dFake", name: string, v: number): GoalMark {
  const short = Math.max(0, Math.abs(v - 0.5) - GOAL.dTolerance);
  return {
    id,
    name,
    value: v,
    target: `0.5 \u00b1 ${GOAL.dTolerance}`,
    met: short === 0,
    short,
    miss: short / (0.5 - GOAL.dTolerance),
  };
}

function scoreMark(score: number): GoalMark {
  const short = Math.max(0, GOAL.minClassifierScore - score);
  return {
    id: "classifierScore",
    name: "classifier score, final",
    value: score,
    target: `\u2265 ${GOAL.minClassifierScore}`,
    met: short === 0,
    short,
    miss: short / GOAL.minClassifierScore,
  };
}

/** Class shares of a histogram (counts or shares). */
function sharesOf(histogram: number[]): number[] {
  const total = histogram.reduce((s, x) => s + x, 0) || 1;
  return histogram.map((x) => x / total);
}

function classMark(shares: number[]): GoalMark {
  const [lo, hi] = GOAL.classShare;
  // signed distance past the nearer edge: > 0 outside the band, <= 0 inside it; the largest
  // names the digit the mark is about, the one nearest to leaving the band when all are in
  const past = shares.map((s) => Math.max(lo - s, s - hi));
  const outside = past.map((x) => Math.max(0, x));
  const worst = past.indexOf(Math.max(...past));
  return {
    id: "classShares",
    name: `class shares, final (${
      outside[worst] > 0 ? "furthest" : "nearest an edge"
    }: digit ${worst})`,
    value: shares[worst],
    target: `every class in [${100 * lo}%, ${100 * hi}%]`,
    met: outside[worst] === 0,
    short: outside[worst],
    miss: outside.reduce((s, x) => s + x, 0) / (hi - lo),
  };
}

function frechetMark(best: number, where: string, reference: GoalInput["reference"]): GoalMark {
  const factor = reference.frechetFactor ?? GOAL.frechetFactor;
  const limit = factor * reference.frechet;
  const short = Math.max(0, best - limit);
  return {
    id: "frechet",
    name: `Frechet distance, best checkpoint (${where})`,
    value: best,
    target: `\u2264 ${factor} \u00d7 real floor = ${limit.toFixed(2)}`,
    met: short === 0,
    short,
    miss: short / limit,
  };
}

function summed(marks: GoalMark[]): { marks: GoalMark[]; met: number; miss: number } {
  return {
    marks,
    met: marks.filter((k) => k.met).length,
    miss: marks.reduce((s, k) => s + k.miss, 0),
  };
}

/** Every mark for a run's evaluation, how many are met, and the summed miss (0: the goal). */
export function goalMarks(m: GoalInput): { marks: GoalMark[]; met: number; miss: number } {
  const final = m.checkpoints.at(-1)!;
  const window = lastShare(m.checkpoints, GOAL.window);
  const mean = (f: (c: CheckpointMetrics) => number) =>
    window.reduce((s, c) => s + f(c), 0) / window.length;
  const span = window.length > 1
    ? `mean of ${window.length} checkpoints in the last ${100 * GOAL.window}%`
    : "final";
  const best = m.checkpoints.reduce((b, c) => (c.frechet < b.frechet ? c : b));
  return summed([
    dMark("dReal", `D(real), ${span}`, mean((c) => c.dReal)),
    dMark("dFake", `D(fake), ${span}`, mean((c) => c.dFake)),
    scoreMark(final.classifierScore),
    classMark(sharesOf(final.classHistogram)),
    frechetMark(best.frechet, String(best.iteration), m.reference),
  ]);
}

/** The mark with this id (every list of marks holds each id once). */
export function markOf(marks: GoalMark[], id: MarkId): GoalMark {
  const m = marks.find((k) => k.id === id);
  if (!m) throw new Error(`no goal mark ${id}`);
  return m;
}

/**
 * The real-vs-real Frechet floor of several runs, as a mean: it differs a little by seed (the
 * floor's real digits are drawn from the run's seed), so no one run's stands for all.
 */
export function meanFloor(runs: GoalInput[]): number {
  return runs.reduce((s, r) => s + r.reference.frechet, 0) / runs.length;
}

/**
 * The marks of several runs of one setting (its seeds) taken as a mean: each mark's value is
 * the mean of the runs' values (the class shares: the mean of their final shares), judged by
 * the same target. The runs must share an evaluator (one floor), as a study's seeds do.
 */
export function meanGoalMarks(runs: GoalInput[]): { marks: GoalMark[]; met: number; miss: number } {
  const each = runs.map(goalMarks);
  const mean = (id: MarkId) =>
    each.reduce((s, g) => s + markOf(g.marks, id).value, 0) / each.length;
  const shares = runs.map((r) => sharesOf(r.checkpoints.at(-1)!.classHistogram));
  const meanShares = shares[0].map((_, k) => shares.reduce((s, x) => s + x[k], 0) / shares.length);
  const n = `mean of ${runs.length} seeds`;
  return summed([
    dMark("dReal", `D(real), ${n}`, mean("dReal")),
    dMark("dFake", `D(fake), ${n}`, mean("dFake")),
    { ...scoreMark(mean("classifierScore")), name: `classifier score, final, ${n}` },
    { ...classMark(meanShares), name: `class shares, final, ${n}` },
    frechetMark(mean("frechet"), n, { ...runs[0].reference, frechet: meanFloor(runs) }),
  ]);
}
