/**
 * `--full-grid`: after running every point of a halving sweep to its last rung, says what the
 * same file's halving search found and spent beside the grid's best.

 * (Tested end to end by tests/halving_test.ts.)
 */
import { join } from "node:path";
import type { App } from "../app.ts";
import { Progress } from "../progress.ts";
import { compareHalving } from "./halving.ts";
import { readJson } from "./point.ts";
import { type PreparedSweep, sameSearchBlock } from "./prepared.ts";
import type { PointRecord } from "../point_record.ts";
import { loadSweep, sweepDir, type SweepSource, type SweepSpec } from "./spec.ts";

/**
 * After a `--full-grid` run: what the same file's halving search found and spent beside
 * the grid's best (the search's sweep.json, where it has run in this results folder).
 */
export async function compareWithSearch(
  app: App,
  file: SweepSource,
  results: string,
  grid: PreparedSweep,
) {
  const searched = await loadSweep(file, join(results, "sweeps"), app);
  const h = searched.spec.search!;
  const dir = sweepDir(results, searched);
  const rec = await readJson<{ spec?: SweepSpec; points: PointRecord[] }>(join(dir, "sweep.json"));
  const log = new Progress();
  if (!rec?.points?.some((p) => p.rungFigures)) {
    log.log(
      `no halving search of this file in ${results} yet: run it without --full-grid to compare`,
    );
    return;
  }
  if (!sameSearchBlock(rec.spec, searched.spec)) {
    log.log(
      `the halving search in ${dir} was made with another search block: run it again without --full-grid to compare`,
    );
    return;
  }
  const higher = app.sweep.higherIsBetter.includes(h.metric);
  const c = compareHalving(
    rec.points.map((p) => p.rungFigures ?? h.rungs.map(() => null)),
    grid.records.map((r) =>
      r.status === "done" ? app.figures(r.summaries)[h.metric] ?? null : null
    ),
    h.rungs,
    higher,
  );
  const name = (i: number) => `p${String(i).padStart(3, "0")}`;
  const show = (b: { point: number; figure: number } | null) =>
    b ? `${name(b.point)} (${h.metric} ${b.figure.toPrecision(4)})` : "no point";
  const same = c.halving && c.grid && c.halving.point === c.grid.point;
  const behind = !same && c.halving && c.grid && c.rankInGrid !== null
    ? `, ranked ${c.rankInGrid} of ${grid.records.length} in the grid, ${
      Math.abs(c.halving.figure - c.grid.figure).toPrecision(3)
    } (${(100 * Math.abs(c.halving.figure / c.grid.figure - 1)).toFixed(1)}%) behind its best`
    : "";
  log.log(
    `halving (${dir}) found ${show(c.halving)} with ${c.spent} of ${c.full} ${
      h.resource ?? app.sweep.resource
    } (${Math.round((100 * c.spent) / c.full)}%); the full grid's best is ${show(c.grid)}: ${
      same ? "the same point" : `a different point${behind}`
    }`,
  );
}
