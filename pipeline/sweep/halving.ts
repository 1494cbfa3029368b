/**
 * Successive halving, asynchronous (ASHA, Li et al. 2018): every point runs to the first
 * rung; whenever a slot is free, the best point at the highest rung whose top 1/eta it is in,
 * and that has not gone further, is promoted to the next rung (its run continues the shorter
 * one from the cache); otherwise a new point starts. Slots never wait for a rung to fill.
 *
 * New points start in a shuffled order unless the search says `"order": "given"`. ASHA
 * promotes whatever is in the top 1/eta of the points seen so far, so it assumes they arrive
 * in no particular order; a grid arrives sorted by its first axis, and when that axis is the
 * one that matters (a learning rate), every early survivor is promoted before the good
 * settings have started. The shuffle is seeded by the points themselves, so a resumed search
 * keeps its order.
 *
 * @example
 * ```ts
 * import { nextJob } from "./halving.ts";
 * import assert from "node:assert/strict";
 * // three points finished rung 0 with figures 5, 3, 9 (lower is better), eta 3: promote the 3
 * const points = [[5], [3], [9]].map((f) => ({ figures: f, busy: false }));
 * const next = nextJob(points, { rungs: 2, eta: 3, higherIsBetter: false });
 * assert.deepEqual(next, { point: 1, rung: 1 });
 * ```
 */
import type { PointRecord } from "../point_record.ts";
import type { HalvingSearch } from "./spec.ts";
import { hashValue } from "../hash.ts";
import { Rng } from "../rng.ts";

/** A point's progress: its figure at each rung it finished, and whether it is running. */
export interface PointState {
  figures: (number | null)[];
  busy: boolean;
}

const reached = (p: PointState) => p.figures.filter((f) => f !== null).length;

/**
 * The order new points start in: `given` is the file's; `shuffled` a permutation seeded by
 * the points' overrides (the same sweep gets the same order on every resume).
 */
export function startOrder(
  overrides: unknown[],
  order: "shuffled" | "given" = "shuffled",
): number[] {
  const idx = overrides.map((_, i) => i);
  if (order === "given") return idx;
  const rng = new Rng(parseInt(hashValue(overrides).slice(0, 8), 16));
  for (let i = idx.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx;
}

/**
 * The next (point, rung) to run, or null when nothing can start now. New points start in
 * `order` (default: index order).
 */
export function nextJob(
  points: PointState[],
  { rungs, eta, higherIsBetter, order = points.map((_, i) => i) }: {
    /** How many rungs there are. */
    rungs: number;
    eta: number;
    higherIsBetter: boolean;
    order?: number[];
  },
): { point: number; rung: number } | null {
  for (let r = rungs - 2; r >= 0; r--) {
    const done = points.map((p, i) => ({ p, i })).filter(({ p }) =>
      p.figures[r] !== null && p.figures[r] !== undefined
    );
    done.sort((a, b) =>
      higherIsBetter ? b.p.figures[r]! - a.p.figures[r]! : a.p.figures[r]! - b.p.figures[r]!
    );
    const top = done.slice(0, Math.floor(done.length / eta));
    const next = top.find(({ p }) => !p.busy && reached(p) === r + 1);
    if (next) return { point: next.i, rung: r + 1 };
  }
  const fresh = order.find((i) => {
    const p = points[i];
    return !p.busy && reached(p) === 0 && p.figures.length === 0;
  });
  return fresh !== undefined ? { point: fresh, rung: 0 } : null;
}

/**
 * A sweep's settings: its points grouped by everything but the seed. Halving decides per
 * setting, on the mean of its seeds' figures, so one lucky seed cannot carry a setting to the
 * next rung (a point without seeds is a setting of one).
 */
export function settingsOf(records: PointRecord[]): number[][] {
  const groups = new Map<string, number[]>();
  for (const [i, r] of records.entries()) {
    const { seed: _seed, ...rest } = r.overrides;
    const key = JSON.stringify(Object.entries(rest).sort(([a], [b]) => a.localeCompare(b)));
    groups.set(key, [...(groups.get(key) ?? []), i]);
  }
  return [...groups.values()];
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * Runs a halving search over `records` (ASHA, asynchronous successive halving): each setting
 * (its seeds together) runs to the first rung; a setting goes on to the next rung when the
 * mean of its seeds' figures is in the best 1/eta of the settings that finished that rung.
 * Returns the resource spent and what the full grid would spend.
 */
export async function runHalving(
  records: PointRecord[],
  { search: h, higherIsBetter, jobs, run, onChange }: {
    search: HalvingSearch;
    higherIsBetter: boolean;
    /** Runs in flight at most. */
    jobs: number;
    run: (r: PointRecord, rung: number) => Promise<number | null>;
    /** Called whenever a record changed (to save sweep.json). */
    onChange: () => Promise<void>;
  },
): Promise<{ spent: number; full: number }> {
  const settings = settingsOf(records);
  const figureOf = (members: number[], rung: number): number | null => {
    const figs = members.map((m) => records[m].rungFigures?.[rung] ?? null);
    return figs.every((f) => f !== null) ? mean(figs as number[]) : null;
  };
  const states: PointState[] = settings.map((members) => {
    const n = Math.max(0, ...members.map((m) => records[m].rungFigures?.length ?? 0));
    return { figures: Array.from({ length: n }, (_, r) => figureOf(members, r)), busy: false };
  });
  const failed = new Set(
    settings.flatMap((members, g) =>
      members.some((m) => records[m].status === "failed") ? [g] : []
    ),
  );
  const active = new Set<Promise<void>>();
  const order = startOrder(settings.map((members) => records[members[0]].overrides), h.order);
  for (;;) {
    while (active.size < jobs) {
      const job = nextJob(
        states.map((s, i) => (failed.has(i) ? { ...s, busy: true } : s)),
        { rungs: h.rungs.length, eta: h.eta, higherIsBetter, order },
      );
      if (!job) break;
      const st = states[job.point];
      st.busy = true;
      const p = (async () => {
        // the setting's seeds, one after another in this slot (other slots run other settings)
        for (const m of settings[job.point]) {
          if ((records[m].rungFigures?.[job.rung] ?? null) !== null) continue; // resumed
          const figure = await run(records[m], job.rung);
          if (figure === null) {
            failed.add(job.point);
            break;
          }
          const figs = [...(records[m].rungFigures ?? [])];
          figs[job.rung] = figure;
          records[m].rungFigures = figs;
          await onChange();
        }
        if (!failed.has(job.point)) st.figures[job.rung] = figureOf(settings[job.point], job.rung);
        st.busy = false;
        await onChange();
      })();
      const tracked = p.finally(() => active.delete(tracked));
      active.add(tracked);
    }
    if (active.size === 0) break;
    await Promise.race(active);
  }
  // why each point stopped where it did
  for (const [g, members] of settings.entries()) {
    if (failed.has(g)) continue;
    const n = reached(states[g]);
    const rung = n - 1;
    const finishedHere = states.filter((s) => s.figures[rung] != null).length;
    const seeds = members.length > 1 ? ` (mean of its ${members.length} seeds)` : "";
    const unit = settings.some((m) => m.length > 1) ? "settings" : "points";
    for (const m of members) {
      records[m].stopped = n === h.rungs.length
        ? `finished every rung (${h.rungs.at(-1)})`
        : `stopped at rung ${rung} (${h.rungs[rung]}): ${h.metric} ${
          states[g].figures[rung]?.toPrecision(4)
        }${seeds} not in the best 1/${h.eta} of the ${finishedHere} ${unit} that finished it`;
    }
  }
  const spent = records.reduce((t, r) => {
    const k = (r.rungFigures ?? []).filter((f) => f !== null).length;
    return t + (k ? h.rungs[k - 1] : 0);
  }, 0);
  return { spent, full: records.length * h.rungs.at(-1)! };
}

/** What a halving search found and spent, beside the full grid over the same points. */
export interface HalvingComparison {
  /** The search's best point (index) among those that finished the last rung, and its figure. */
  halving: { point: number; figure: number } | null;
  /** The full grid's best point and figure. */
  grid: { point: number; figure: number } | null;
  /** Resource the search spent, and the full grid's (points x last rung). */
  spent: number;
  full: number;
  /** Where the search's point ranks among the grid's points (1: the grid's best). */
  rankInGrid: number | null;
}

/**
 * Compares a halving search with the full grid run over the same points: `rungFigures` are
 * the search's figures per point, `gridFigures` the grid's (null: failed or not run).
 */
export function compareHalving(
  rungFigures: (number | null)[][],
  gridFigures: (number | null)[],
  rungs: number[],
  higherIsBetter: boolean,
): HalvingComparison {
  const better = (a: number, b: number) => (higherIsBetter ? a > b : a < b);
  const best = (figs: (number | null)[]): { point: number; figure: number } | null => {
    let out: { point: number; figure: number } | null = null;
    for (const [i, f] of figs.entries()) {
      if (f !== null && (out === null || better(f, out.figure))) out = { point: i, figure: f };
    }
    return out;
  };
  const last = rungs.length - 1;
  const spent = rungFigures.reduce((t, figs) => {
    const reached = figs.filter((f) => f !== null).length;
    return t + (reached ? rungs[reached - 1] : 0);
  }, 0);
  const halving = best(rungFigures.map((figs) => figs[last] ?? null));
  const mine = halving ? gridFigures[halving.point] : null;
  return {
    halving,
    grid: best(gridFigures),
    spent,
    full: gridFigures.length * rungs[last],
    rankInGrid: mine === null || mine === undefined
      ? null
      : 1 + gridFigures.filter((f) => f !== null && better(f, mine)).length,
  };
}
