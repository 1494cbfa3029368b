/**
 * A markdown table of the goal marks per seed and their mean, from finished sweeps: how the
 * README and docs/recipe.md report a recipe over seeds and kernel families.
 *
 *   deno run -A stages/tools/seed_table.ts Cooperlake=results/sweeps/a-123 Haswell=results/sweeps/b-456 [--setting TEXT]
 *
 * Each argument is LABEL=SWEEP_FOLDER (the label names the CPU or kernel family the sweep ran
 * on); `--setting` keeps the points whose overrides contain TEXT. The cache is the sweep's
 * results folder's.
 */
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { type GoalInput, goalMarks, markOf, meanFloor, meanGoalMarks } from "../evaluation/goal.ts";
import type { PointRecord } from "../../pipeline/point_record.ts";
import { entryDir } from "../../pipeline/store.ts";
import { artifact } from "../vocabulary.ts";

/** One row: a seed's marks, or the mean's. */
export interface SeedRow {
  label: string;
  seed: string;
  cells: string[];
  met: number;
}

const f3 = (x: number) => x.toFixed(3);
const tick = (met: boolean) => (met ? " ✓" : "");

/** Each mark's cell text: the value as the README shows it, ticked when met. */
function cells(g: ReturnType<typeof goalMarks>, floor: number): string[] {
  const [dr, df, score, cls, fd] = (
    ["dReal", "dFake", "classifierScore", "classShares", "frechet"] as const
  ).map((id) => markOf(g.marks, id));
  return [
    `${f3(dr.value)}${tick(dr.met)}`,
    `${f3(df.value)}${tick(df.met)}`,
    `${score.value.toFixed(2)}${tick(score.met)}`,
    `${(100 * cls.value).toFixed(1)}%${tick(cls.met)}`,
    `${(fd.value / floor).toFixed(2)}x${tick(fd.met)}`,
  ];
}

/** The rows of one sweep: a row per done point that matches, then their mean. */
export async function seedRows(label: string, sweepDir: string, setting = ""): Promise<SeedRow[]> {
  const cache = join(dirname(dirname(sweepDir)), "cache");
  const { points } = JSON.parse(await Deno.readTextFile(join(sweepDir, "sweep.json"))) as {
    points: PointRecord[];
  };
  const runs: { seed: string; m: GoalInput }[] = [];
  for (const p of points) {
    if (p.status !== "done" || !p.keys.evaluate) continue;
    if (setting && !JSON.stringify(p.overrides).includes(setting)) continue;
    const m = JSON.parse(
      await Deno.readTextFile(artifact(entryDir(cache, "evaluate", p.keys.evaluate), "metrics")),
    );
    runs.push({ seed: String(p.overrides.seed ?? "?"), m });
  }
  if (!runs.length) throw new Error(`${sweepDir}: no finished point matches "${setting}"`);
  const rows = runs.map(({ seed, m }) => {
    const g = goalMarks(m);
    return { label, seed, cells: cells(g, m.reference.frechet), met: g.met };
  });
  const inputs = runs.map((r) => r.m);
  const mean = meanGoalMarks(inputs);
  rows.push({
    label,
    seed: `mean of ${runs.length}`,
    cells: cells(mean, meanFloor(inputs)),
    met: mean.met,
  });
  return rows;
}

/** The markdown table. */
export function seedTable(rows: SeedRow[]): string {
  const head = [
    "kernels",
    "seed",
    "D(real), last 10%",
    "D(fake), last 10%",
    "classifier score",
    "class share nearest an edge",
    "best Frechet / floor",
    "marks met",
  ];
  const line = (c: string[]) => `| ${c.join(" | ")} |`;
  return [
    line(head),
    line(head.map(() => "---")),
    ...rows.map((r) =>
      line([r.label, r.seed.startsWith("mean") ? `**${r.seed}**` : r.seed, ...r.cells, `${r.met}`])
    ),
  ].join("\n");
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: { setting: { type: "string", default: "" } },
    allowPositionals: true,
  });
  const rows: SeedRow[] = [];
  for (const arg of positionals) {
    const [label, dir] = arg.includes("=") ? arg.split("=", 2) : ["", arg];
    rows.push(...await seedRows(label, dir, values.setting));
  }
  console.log(seedTable(rows));
}
