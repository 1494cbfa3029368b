/**
 * A successive-halving search (see halving.ts for the decisions) run on any executor.

 * (Tested end to end by tests/halving_test.ts.)
 */
import { join } from "node:path";
import { Progress } from "../progress.ts";
import type { Executor } from "./executor.ts";
import { runHalving } from "./halving.ts";
import { pointLine, pointName, pointRunDir, type PreparedSweep } from "./prepared.ts";
import type { PointRecord } from "../point_record.ts";
import type { HalvingSearch } from "./spec.ts";

/**
 * Runs a halving search on an executor: each rung run of a point continues its shorter one
 * (a longer run extends a cached shorter one), `exec.slots` in flight.
 */
export async function runHalvingSearch(
  s: PreparedSweep,
  h: HalvingSearch,
  exec: Executor,
): Promise<void> {
  const progress = new Progress();
  const resource = h.resource ?? s.app.sweep.resource!;
  await Deno.mkdir(join(s.dir, "logs"), { recursive: true });
  const higher = s.app.sweep.higherIsBetter.includes(h.metric);
  const run = async (r: PointRecord, rung: number) => {
    const name = pointName(s, r);
    const at: PointRecord = { ...r, overrides: { ...r.overrides, [resource]: h.rungs[rung] } };
    r.status = "running";
    r.runDir = pointRunDir(s, at); // followed while it runs (the ui)
    await s.save();
    await exec.runOne(s, at, name, `r${rung}`);
    const figure = at.status === "done" ? s.app.figures(at.summaries)[h.metric] ?? null : null;
    Object.assign(r, { ...at, overrides: r.overrides });
    progress.log(
      `rung ${rung} (${resource}=${h.rungs[rung]}): ${pointLine(s, r)}${
        figure !== null ? `; ${h.metric} ${figure.toPrecision(4)}` : ""
      }`,
    );
    return figure;
  };
  const { spent, full } = await runHalving(s.records, {
    search: h,
    higherIsBetter: higher,
    jobs: exec.slots,
    run,
    onChange: () => s.save(),
  }).finally(() => exec.close());
  progress.log(
    `halving spent ${spent} of the full grid's ${full} ${resource} (${
      (100 * spent / full).toFixed(0)
    }%)`,
  );
}
