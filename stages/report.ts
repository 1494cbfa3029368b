/**
 * Stage `report`: the plots (each as `.vl.json`, `.svg` and `.png` under `plots/`) and a
 * self-contained `report.html` (inline SVG and images, no network) with the config, the
 * metrics table, the plots and the sample-grid timeline. The runner copies the HTML into the
 * run folder and fills in that run's record at the `${REPORT_HANDOFF.marker}` mark.
 */
import { encodeBase64 } from "./reporting/base64.ts";
import { join } from "node:path";
import type { Config } from "./schema.ts";
import type { Stage } from "../pipeline/stage.ts";
import { dSpec, histogramSpec, lossSpec, metricsSpec } from "./reporting/plots.ts";
import { renderSvg, svgToPng } from "./reporting/render.ts";
import {
  ARTIFACT,
  artifact,
  type CheckpointMetrics,
  type HistoryRow,
  type ImageMetrics,
} from "./vocabulary.ts";
import { esc, fmt, PAGE_STYLE } from "./reporting/html.ts";
import { GOAL, goalMarks } from "./evaluation/goal.ts";

interface Metrics {
  samples: number;
  coveredShare: number;
  reference: ImageMetrics & { trueTestHistogram: number[] };
  checkpoints: CheckpointMetrics[];
  final: CheckpointMetrics;
}

function metricsTable(m: Metrics, accuracy: number, cfg: Config): string {
  const f = m.final, r = m.reference;
  const row = (name: string, gen: string, real: string, note: string) =>
    `<tr><td>${name}</td><td>${gen}</td><td>${real}</td><td style="text-align:left">${note}</td></tr>`;
  return `<table><tr><th>metric</th><th>counterfeiter (final)</th><th>real test images</th><th>what it means</th></tr>
${row("D(real) on test images", fmt(f.dReal), "", "mean police output on held-out real digits")}
${
    row(
      "D(fake) on fresh noise",
      fmt(f.dFake),
      "",
      "mean police output on new fakes; 0.5 is the lecture's hope",
    )
  }
${
    row(
      "Frechet distance",
      fmt(f.frechet, 2),
      fmt(r.frechet, 2),
      "distance between Gaussians fitted to the evaluator's penultimate features (FID's MNIST analogue; lower is better)",
    )
  }
${
    row(
      "classifier score",
      fmt(f.classifierScore, 2),
      fmt(r.classifierScore, 2),
      "exp E[KL(p(y|x) || p(y))] (Inception Score's analogue; 1 to 10, higher is better)",
    )
  }
${
    row(
      "classes covered",
      String(f.classesCovered),
      String(r.classesCovered),
      `digits holding at least ${100 * m.coveredShare}% of samples`,
    )
  }
${
    row(
      "KL to uniform",
      fmt(f.klToUniform),
      fmt(r.klToUniform),
      "of the class histogram, in nats; 0 is perfectly balanced, log 10 = 2.30 is one class",
    )
  }
${
    row(
      "pixels outside [0,1]",
      `${(100 * f.outOfRangeFraction).toFixed(1)}%`,
      "0%",
      "images are mapped to [0,1] (from [-1,1] for pixelScale symmetric) and clipped before scoring",
    )
  }
</table>
<p class="sub">Scored on ${m.samples} generated and ${m.samples} real images by the ${
    cfg.evaluator.kind === "conv" ? "conv-net" : "MLP"
  } evaluator (test accuracy ${
    (100 * accuracy).toFixed(2)
  }%, evaluator seed ${cfg.evaluator.seed})${
    cfg.adversarial.ema !== null
      ? `; the counterfeiter scored is the moving average of its weights (decay ${cfg.adversarial.ema})`
      : ""
  }.</p>`;
}

/** The distance-to-goal table: each of the five marks, met or by how much it falls short. */
function goalTable(m: Metrics): { html: string; line: string } {
  const g = goalMarks(m);
  const rows = g.marks.map((k) =>
    `<tr><td style="text-align:left">${esc(k.name)}</td><td>${fmt(k.value)}</td><td>${
      esc(k.target)
    }</td><td>${k.met ? "met" : `short by ${fmt(k.short)}`}</td></tr>`
  ).join("\n");
  const missing = g.marks.filter((k) => !k.met).map((k) => k.name.split(",")[0]);
  const line = g.met === g.marks.length
    ? `Goal reached: all ${g.marks.length} marks met.`
    : `Goal: ${g.met} of ${g.marks.length} marks met; missing ${missing.join(", ")}.`;
  return {
    line,
    html: `<table><tr><th>mark</th><th>measured</th><th>target</th><th>verdict</th></tr>
${rows}
</table>
<p class="sub">D marks use held-out test digits and fresh fakes, scored by the checkpoint's police (its state right after its own step) in the last ${
      100 * GOAL.window
    }% of iterations; the class shares and score use the final samples.</p>`,
  };
}

async function figure(
  dir: string,
  name: string,
  spec: Record<string, unknown>,
  caption: string,
): Promise<string> {
  await Deno.writeTextFile(join(dir, `${name}.vl.json`), JSON.stringify(spec, null, 2) + "\n");
  const svg = await renderSvg(spec);
  await Deno.writeTextFile(join(dir, `${name}.svg`), svg);
  await Deno.writeFile(join(dir, `${name}.png`), svgToPng(svg));
  return `<figure>${svg}<figcaption>${caption} (<code>plots/${name}.vl.json</code>)</figcaption></figure>`;
}

/** What a report is made from. */
/** The report the engine publishes into the run folder: this stage's file and its record mark. */
export const REPORT_HANDOFF = { file: ARTIFACT.report, marker: "<!--RUN-RECORD-->" } as const;

export interface ReportInputs {
  cfg: Config;
  history: HistoryRow[];
  metrics: Metrics;
  /** The evaluator's test accuracy. */
  accuracy: number;
  /** The sample grids in order, labelled. */
  grids: { label: string; png: Uint8Array }[];
  realGrid: Uint8Array;
}

/** Builds the report into `outDir`; returns the HTML. */
export async function buildReport(
  { cfg, history, metrics, accuracy, grids, realGrid }: ReportInputs,
  outDir: string,
): Promise<string> {
  const plots = join(outDir, "plots");
  await Deno.mkdir(plots, { recursive: true });
  const last = history.at(-1);
  const figD = await figure(
    plots,
    "d_real_fake",
    dSpec(history),
    "Each iteration's batch: D(real) and D(fake) right after the police update, and D(fake) on the same noise after the counterfeiter update.",
  );
  const figL = await figure(
    plots,
    "losses",
    lossSpec(history),
    "The police's and the counterfeiter's fit losses per iteration.",
  );
  const figM = await figure(
    plots,
    "metrics",
    metricsSpec(metrics.checkpoints, metrics.reference, cfg.adversarial.iterations),
    "The same fixed noise is scored at every checkpoint.",
  );
  const figH = await figure(
    plots,
    "class_histogram",
    histogramSpec(metrics.final.classHistogram, metrics.reference.trueTestHistogram),
    "Predicted classes of the final samples beside the real test set's labels.",
  );
  const img = (png: Uint8Array, label: string) =>
    `<figure><img alt="${esc(label)}" src="data:image/png;base64,${
      encodeBase64(png)
    }"><figcaption>${esc(label)}</figcaption></figure>`;
  const f = metrics.final;
  const goal = goalTable(metrics);
  const verdict = last
    ? `After ${last.iteration} iterations the police says ${
      fmt(last.dRealAfterPolice)
    } to real digits and ${
      fmt(last.dFakeAfterPolice)
    } to fakes right after its own update; the counterfeiter's update brings D(fake) back to ${
      fmt(last.dFakeAfterCounterfeiter)
    }. The lecture hopes for 0.5 on both; this is what happens instead.`
    : "No adversarial iterations were run.";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gan-pipeline report: ${esc(cfg.name)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>${PAGE_STYLE}</style></head>
<body>
<h1>${esc(cfg.name)}</h1>
<p class="sub">seed ${cfg.seed} &middot; ${cfg.adversarial.iterations} iterations, batch ${cfg.adversarial.batchSize}, fit minibatch ${cfg.adversarial.fitBatchSize} &middot; loss from ${cfg.loss.form} &middot; backend setting ${
    esc(cfg.backend)
  }</p>${
    // the file's own words, which --set overrides do not rewrite: the line above is the run's
    cfg.description ? `\n<p class="sub">The config's description: ${esc(cfg.description)}</p>` : ""}
<p class="note">${esc(verdict)} Final D(fake) on fresh noise: ${
    fmt(f.dFake)
  }; classes covered: ${f.classesCovered} of 10.</p>
<p class="note"><strong>${
    esc(goal.line)
  }</strong> One seed is an anecdote: <code>deno task sweep --base CONFIG -m seed=1,2,3</code> gives each mark's mean and range over seeds.</p>
<h2>Distance to the goal</h2>
${goal.html}
<h2>Metrics</h2>
${metricsTable(metrics, accuracy, cfg)}
<h2>What the police says</h2>
<p>The optimal police says p<sub>data</sub>/(p<sub>data</sub> + p<sub>g</sub>), which is 1/2 when the counterfeiter matches the data. Expect a collapse phase early on (D(real) near 1, D(fake) near 0, one blurry digit), then a slow spread over the classes.</p>
${figD}
${figL}
<h2>Samples over time</h2>
<p>The same 25 noise vectors at every checkpoint, so one can watch each face of noise become a digit. Pixels are clipped to [0,1].</p>
<div class="grids">${grids.map((g) => img(g.png, g.label)).join("")}${
    img(realGrid, "real test digits")
  }</div>
<h2>Evaluator metrics</h2>
${figM}
${figH}
<h2>Run record</h2>
${REPORT_HANDOFF.marker}
<h2>Config</h2>
<pre>${esc(JSON.stringify(cfg, null, 2))}</pre>
<p class="sub">Generated by gan-pipeline. Plots: Vega-Lite specs in <code>plots/</code> of the report stage's cache folder.</p>
</body></html>
`;
}

/** The report stage. */
export const reportStage: Stage<Config> = {
  name: "report",
  code: import.meta.url,
  // the fonts the plots are drawn with (read from the package, not imported)
  packages: ["dejavu-fonts-ttf"],
  needs: ["adversarial", "evaluator", "evaluate"],
  doc: "plots and the HTML report",
  outputs: () => [ARTIFACT.report],
  pick: (cfg) => cfg,
  async run({ cfg, inputs, outDir }) {
    const history: HistoryRow[] = JSON.parse(
      await Deno.readTextFile(artifact(inputs.adversarial, "history")),
    );
    const metrics: Metrics = JSON.parse(
      await Deno.readTextFile(artifact(inputs.evaluate, "metrics")),
    );
    const acc =
      JSON.parse(await Deno.readTextFile(artifact(inputs.evaluator, "summary"))).testAccuracy;
    const grids: { label: string; png: Uint8Array }[] = [];
    const names: string[] = [];
    for await (const e of Deno.readDir(artifact(inputs.evaluate, "grids"))) {
      if (/^iter_\d+\.png$/.test(e.name)) names.push(e.name);
    }
    for (const n of names.sort()) {
      grids.push({
        label: `iteration ${Number(n.slice(5, 11))}`,
        png: await Deno.readFile(artifact(inputs.evaluate, "grids", n)),
      });
    }
    if (!names.length) {
      grids.push({
        label: "final",
        png: await Deno.readFile(artifact(inputs.evaluate, "grids", "final.png")),
      });
    }
    const realGrid = await Deno.readFile(artifact(inputs.evaluate, "grids", "real.png"));
    const html = await buildReport(
      { cfg, history, metrics, accuracy: acc, grids, realGrid },
      outDir,
    );
    await Deno.writeTextFile(artifact(outDir, "report"), html);
    return { plots: 4, bytes: html.length };
  },
};
