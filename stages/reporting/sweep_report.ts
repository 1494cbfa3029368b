/**
 * The sweep report: a ranked table of the points and Vega-Lite plots overlaying D(real) and
 * D(fake) across points, and the final evaluator metrics per setting with their mean and
 * spread over seeds. Self-contained HTML, like the run report.
 */
import { join } from "node:path";
import type { PointRecord } from "../../pipeline/point_record.ts";
import type { SweepReport } from "../../pipeline/app.ts";
import { smooth } from "./plots.ts";
import { renderSvg, VL_SCHEMA } from "./render.ts";
import { esc, fmt, PAGE_STYLE } from "./html.ts";
import { artifact, type HistoryRow, RANK_METRICS } from "../vocabulary.ts";
import { entryDir } from "../../pipeline/store.ts";
import { type GoalInput, goalMarks, markOf, meanGoalMarks } from "../evaluation/goal.ts";

export { RANK_METRICS } from "../vocabulary.ts";

/** The figures a point is ranked by, from its evaluate stage's summary. */
export interface PointFigures {
  frechet?: number;
  /** The lowest Frechet distance over the run's checkpoints. */
  bestFrechet?: number;
  /** The mean Frechet distance over the checkpoints in the second half of the run. */
  tailFrechet?: number;
  /** Summed shortfall from the goal's five marks (0: every mark met). */
  goalMiss?: number;
  goalMarksMet?: number;
  classifierScore?: number;
  classesCovered?: number;
  klToUniform?: number;
  dReal?: number;
  dFake?: number;
  gap?: number;
}

/** A point's final figures (from the evaluate summary), with gap = |D(real) - D(fake)|. */
export function figuresOf(p: PointRecord): PointFigures {
  return runFigures(p.summaries);
}

/** A run's final figures from its stages' summaries, with gap = |D(real) - D(fake)|. */
export function runFigures(summaries: Record<string, unknown>): PointFigures {
  const e = (summaries.evaluate ?? {}) as Record<string, unknown>;
  const out: PointFigures = {};
  for (const m of RANK_METRICS) if (typeof e[m] === "number") out[m] = e[m] as number;
  if (out.dReal !== undefined && out.dFake !== undefined) out.gap = Math.abs(out.dReal - out.dFake);
  return out;
}

/** Points ranked by a metric (failed points last). */
export function rankPoints(
  points: PointRecord[],
  metric: string,
  order: "asc" | "desc",
): PointRecord[] {
  const v = (p: PointRecord) => figuresOf(p)[metric as keyof PointFigures];
  // a halving search: points that got further rank first
  const reached = (p: PointRecord) => (p.rungFigures ?? []).filter((f) => f !== null).length;
  return [...points].sort((a, b) => {
    if (reached(a) !== reached(b)) return reached(b) - reached(a);
    const x = v(a), y = v(b);
    if (x === undefined || y === undefined) {
      return x === undefined ? (y === undefined ? a.index - b.index : 1) : -1;
    }
    return order === "asc" ? x - y : y - x;
  });
}

const label = (p: PointRecord) => `p${String(p.index).padStart(3, "0")}`;

/** The length a halving point's figures were measured at: its furthest rung's. */
export function reachedLength(p: PointRecord, rungs: number[] | undefined): number | null {
  if (!rungs || !p.rungFigures) return null;
  const reached = p.rungFigures.filter((f) => f !== null).length;
  return reached ? rungs[reached - 1] : null;
}

/** A point's setting (its overrides less the seed), with the length of a halving point. */
const setting = (p: PointRecord, rungs?: number[]) => {
  const knobs =
    Object.entries(p.overrides).filter(([k]) => k !== "seed").map(([k, v]) =>
      `${k.split(".").at(-1)}=${v}`
    ).join(" ") || "base";
  const at = reachedLength(p, rungs);
  return at === null ? knobs : `${knobs} @${at}`;
};

/** The overlay of D(real)/D(fake) per point. */
export function overlaySpec(
  histories: { point: string; history: HistoryRow[] }[],
): Record<string, unknown> {
  const rows: Record<string, unknown>[] = [];
  for (const { point, history } of histories) {
    const w = Math.max(1, Math.round(history.length / 30));
    const real = smooth(history.map((r) => r.dRealAfterPolice), w);
    const fake = smooth(history.map((r) => r.dFakeAfterCounterfeiter), w);
    history.forEach((r, i) => {
      rows.push({
        point,
        iteration: r.iteration,
        measure: "D(real), after the police step",
        value: real[i],
      });
      rows.push({
        point,
        iteration: r.iteration,
        measure: "D(fake), after the counterfeiter step",
        value: fake[i],
      });
    });
  }
  return {
    $schema: VL_SCHEMA,
    title: { text: "D(real) and D(fake) across points", subtitle: "moving averages; dashed: 0.5" },
    width: 640,
    height: 280,
    layer: [
      {
        data: { values: rows },
        mark: { type: "line", strokeWidth: 1.6 },
        encoding: {
          x: { field: "iteration", type: "quantitative", title: "adversarial iteration" },
          y: {
            field: "value",
            type: "quantitative",
            title: "mean police output",
            scale: { domain: [0, 1] },
          },
          color: { field: "point", type: "nominal", title: "point" },
          strokeDash: { field: "measure", type: "nominal", title: null },
          detail: { field: "point" },
        },
      },
      {
        data: { values: [{ y: 0.5 }] },
        mark: { type: "rule", strokeDash: [2, 2], color: "#444" },
        encoding: { y: { field: "y", type: "quantitative" } },
      },
    ],
    config: { legend: { orient: "right", labelLimit: 0 } },
  };
}

/**
 * Final metrics per setting: every seed as a dot, the mean, and the spread (one stdev). One
 * row per setting, its whole label beside it; a halving point's label carries the length its
 * figures are from (`@20`), so points measured at different lengths are never averaged.
 */
export function settingsSpec(points: PointRecord[], rungs?: number[]): Record<string, unknown> {
  const metrics: [keyof PointFigures, string][] = [
    ["frechet", "Frechet distance (lower is better)"],
    ["classifierScore", "classifier score (higher is better)"],
    ["classesCovered", "classes covered"],
    ["gap", "|D(real) - D(fake)| (0 is the lecture's hope)"],
  ];
  const rows: Record<string, unknown>[] = [];
  for (const p of points) {
    const f = figuresOf(p);
    for (const [k, name] of metrics) {
      if (f[k] !== undefined) rows.push({ setting: setting(p, rungs), metric: name, value: f[k] });
    }
  }
  return {
    $schema: VL_SCHEMA,
    title: {
      text: "Final metrics per setting",
      subtitle: "dots: seeds; bar: mean +- one standard deviation",
    },
    data: { values: rows },
    facet: {
      column: {
        field: "metric",
        type: "nominal",
        title: null,
        header: { labelFontWeight: "bold" },
      },
    },
    spec: {
      width: 170,
      height: { step: 22 },
      layer: [
        {
          mark: { type: "errorbar", extent: "stdev" },
          encoding: {
            y: { field: "setting", type: "nominal", title: null, axis: { labelLimit: 0 } },
            x: {
              field: "value",
              type: "quantitative",
              title: null,
              scale: { zero: false },
              axis: { format: "~g", tickCount: 4 },
            },
          },
        },
        {
          mark: { type: "point", filled: true, size: 70, color: "black" },
          encoding: {
            y: { field: "setting", type: "nominal" },
            x: { field: "value", type: "quantitative", aggregate: "mean" },
          },
        },
        {
          mark: { type: "point", opacity: 0.5 },
          encoding: {
            y: { field: "setting", type: "nominal" },
            x: { field: "value", type: "quantitative" },
          },
        },
      ],
    },
    resolve: { scale: { x: "independent" } },
  };
}

/**
 * Evaluate metrics read so far, by file: a sealed entry never changes (a key recomputed after gc
 * gives the same bits), so the ui, polling a running sweep each second, parses each file once; it
 * still checks the file is there, so a point whose entry gc removed drops out as it does uncached.
 */
const sealedMetrics = new Map<string, GoalInput>();

/**
 * The goal marks per setting over its seeds: for each mark, the mean and the range of its value
 * and on how many seeds it was met. Read from each done point's evaluate metrics in the cache.
 */
export async function goalBySetting(
  points: PointRecord[],
  cacheDir: string,
  rungs?: number[],
): Promise<
  {
    setting: string;
    seeds: number;
    marks: {
      name: string;
      target: string;
      values: number[];
      met: number;
      perSeed: boolean[];
      meanMet: boolean;
    }[];
    /** How many marks the mean over the seeds meets. */
    meanMet: number;
  }[]
> {
  const groups = new Map<string, GoalInput[]>();
  for (const p of points) {
    if (p.status !== "done" || !p.keys.evaluate) continue;
    const path = artifact(entryDir(cacheDir, "evaluate", p.keys.evaluate), "metrics");
    let metrics = sealedMetrics.get(path);
    if (metrics && !(await Deno.stat(path).then(() => true, () => false))) {
      sealedMetrics.delete(path);
      continue;
    }
    if (!metrics) {
      try {
        metrics = JSON.parse(await Deno.readTextFile(path)) as GoalInput;
      } catch {
        continue; // a point whose cache was cleared
      }
      sealedMetrics.set(path, metrics);
    }
    const key = setting(p, rungs);
    groups.set(key, [...(groups.get(key) ?? []), metrics]);
  }
  return [...groups].map(([s, inputs]) => {
    const runs = inputs.map((m) => goalMarks(m).marks);
    const mean = meanGoalMarks(inputs);
    return {
      setting: s,
      seeds: runs.length,
      marks: runs[0].map((m) => ({
        // the class-shares mark names a digit, which differs by seed
        name: m.name.replace(/ \(.*\)$/, ""),
        target: m.target.replace(/ = [\d.]+$/, ""),
        values: runs.map((r) => markOf(r, m.id).value),
        met: runs.filter((r) => markOf(r, m.id).met).length,
        perSeed: runs.map((r) => markOf(r, m.id).met),
        meanMet: markOf(mean.marks, m.id).met,
      })),
      meanMet: mean.met,
    };
  });
}

/** The goal-by-setting table's HTML: mean (min-max) and "met on k of n" per mark. */
function goalTableHtml(rows: Awaited<ReturnType<typeof goalBySetting>>): string {
  if (!rows.length) return "";
  const head = rows[0].marks.map((m) =>
    `<th>${esc(m.name)}<br><small>${esc(m.target)}</small></th>`
  );
  const body = rows.map((r) =>
    `<tr><td class="why">${
      esc(r.setting)
    }</td><td>${r.seeds}</td><td>${r.meanMet} of ${r.marks.length}</td>${
      r.marks.map((m) => {
        const mean = m.values.reduce((a, b) => a + b, 0) / m.values.length;
        const range = m.values.length > 1
          ? ` (${fmt(Math.min(...m.values), 3)} to ${fmt(Math.max(...m.values), 3)})`
          : "";
        return `<td>${fmt(mean, 3)}${range}<br><small>${
          m.meanMet ? "the mean meets it" : "the mean misses"
        }; met on ${m.met} of ${m.values.length}</small></td>`;
      }).join("")
    }</tr>`
  ).join("\n");
  return `<h2>The goal marks per setting, over its seeds</h2>
<p>Each mark's mean over the setting's seeds, its range, whether the mean meets it (the class
shares: the mean of the seeds' shares), and on how many seeds it was met: a claim about a setting
is a claim about all of them.</p>
<table><tr><th>setting</th><th>seeds</th><th>marks the mean meets</th>${head.join("")}</tr>
${body}</table>`;
}

/** Writes the sweep report (and its .vl.json specs) into `dir`; returns the HTML path. */
export async function writeSweepReport(
  { dir, name, points, rank, cacheRoot: cacheDir, search }: SweepReport,
): Promise<string> {
  const histories: { point: string; history: HistoryRow[] }[] = [];
  for (const p of points) {
    if (p.status !== "done" || !p.keys.adversarial) continue;
    try {
      const h = JSON.parse(
        await Deno.readTextFile(
          artifact(entryDir(cacheDir, "adversarial", p.keys.adversarial), "history"),
        ),
      );
      histories.push({ point: label(p), history: h });
    } catch { /* a point whose cache was cleared: no curve */ }
  }
  const plots = join(dir, "plots");
  await Deno.mkdir(plots, { recursive: true });
  const figs: string[] = [];
  for (
    const [file, spec] of [["overlay", overlaySpec(histories)], [
      "settings",
      settingsSpec(points, search?.rungs),
    ]] as const
  ) {
    await Deno.writeTextFile(join(plots, `${file}.vl.json`), JSON.stringify(spec, null, 2) + "\n");
    figs.push(`<figure>${await renderSvg(spec)}</figure>`);
  }
  const ranked = rankPoints(points, rank.metric, rank.order);
  // the figure the points are ranked by gets a column when the table has none for it
  const shown = ["frechet", "classifierScore", "classesCovered", "dReal", "dFake"];
  const rankCol = shown.includes(rank.metric) ? null : rank.metric as keyof PointFigures;
  const rows = ranked.map((p, i) => {
    const f = figuresOf(p);
    const link = p.runDir
      ? `<a href="${
        esc(artifact(join("..", "..", "runs", p.runDir.split("/").at(-1)!), "report"))
      }">${label(p)}</a>`
      : label(p);
    return `<tr${p.status === "failed" ? ' class="failed"' : ""}><td>${
      p.status === "done" ? i + 1 : ""
    }</td><td>${link}</td><td style="text-align:left">${
      esc(Object.entries(p.overrides).map(([k, v]) => `${k}=${v}`).join(", "))
    }</td><td>${esc(p.status)}</td>${
      search ? `<td>${reachedLength(p, search.rungs) ?? ""}</td>` : ""
    }${rankCol ? `<td>${fmt(f[rankCol], 3)}</td>` : ""}<td>${fmt(f.frechet, 2)}</td><td>${
      fmt(f.classifierScore, 2)
    }</td><td>${fmt(f.classesCovered)}</td><td>${fmt(f.dReal)}</td><td>${
      fmt(f.dFake)
    }</td><td class="why">${esc(p.error ?? p.stopped ?? "")}${
      p.status === "failed" && p.log && !(p.error ?? "").includes(p.log)
        ? ` (log: <code>${esc(p.log)}</code>)`
        : ""
    }</td></tr>`;
  }).join("\n");
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>sweep ${
    esc(name)
  }</title>
<style>${PAGE_STYLE} body { max-width: 1200px; } tr.failed td { background: #fdecea; }
td.why { min-width: 22em; text-align: left; } figure { overflow-x: auto; }
td.why { min-width: 22em; text-align: left; } figure { overflow-x: auto; }</style></head><body>
<h1>Sweep ${esc(name)}</h1>
<p>${points.length} points, ${points.filter((p) => p.status === "done").length} done, ${
    points.filter((p) => p.status === "failed").length
  } failed. Ranked by ${esc(rank.metric)} (${
    rank.order === "asc" ? "lower is better" : "higher is better"
  }). D(real) and D(fake): final, on held-out test images and fresh noise.</p>
${
    search
      ? `<p>Successive halving over ${esc(search.resource)} (rungs ${
        search.rungs.join(", ")
      }): each point's figures are from the furthest rung it reached, the column <em>measured at</em>; points stopped early were measured shorter, so compare figures within one length. Points that reached the same rung rank first.</p>`
      : ""
  }
<table><tr><th>rank</th><th>point</th><th>overrides</th><th>status</th>${
    search ? `<th>measured at (${esc(search.resource.split(".").at(-1)!)})</th>` : ""
  }${
    rankCol ? `<th>${esc(rankCol)}</th>` : ""
  }<th>Frechet</th><th>score</th><th>classes</th><th>D(real)</th><th>D(fake)</th><th>stopped or failed: why</th></tr>
${rows}</table>
${goalTableHtml(await goalBySetting(points, cacheDir, search?.rungs))}
${figs.join("\n")}
<p>Each point's own report is linked from its name; the machine-readable record is <code>sweep.json</code>.</p>
</body></html>`;
  const path = artifact(dir, "report");
  await Deno.writeTextFile(path, html);
  return path;
}

/**
 * One line per setting run on several seeds: how many marks the mean over its seeds meets,
 * which it misses, and how many each seed met. What a claim about a setting can say.
 */
export async function goalSummary(
  { points, cacheRoot, search }: SweepReport,
): Promise<string[]> {
  const rows = (await goalBySetting(points, cacheRoot, search?.rungs)).filter((r) => r.seeds > 1);
  return rows.map((r) => {
    const missed = r.marks.filter((m) => !m.meanMet).map((m) => m.name.replace(/,.*$/, ""));
    const perSeed = r.marks[0].values.map((_, i) => r.marks.filter((m) => m.perSeed[i]).length);
    return `goal over ${r.seeds} seeds, ${r.setting}: the mean meets ${r.meanMet} of ${r.marks.length} marks${
      missed.length ? ` (misses ${missed.join(", ")})` : ""
    }; each seed met ${perSeed.join(", ")}`;
  });
}
