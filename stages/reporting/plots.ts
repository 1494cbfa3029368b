/**
 * The report's Vega-Lite specs, built from the history and the metrics. Data is inlined so
 * each `.vl.json` is a complete, portable plot (open it in the Vega editor, or render it).
 */
import { FONT, VL_SCHEMA } from "./render.ts";
import type { CheckpointMetrics, HistoryRow, ImageMetrics } from "../vocabulary.ts";

type Spec = Record<string, unknown>;

const CONFIG = {
  font: FONT,
  view: { stroke: "#ccc" },
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: "#eee" },
  legend: {
    labelFontSize: 11,
    titleFontSize: 12,
    orient: "bottom",
    direction: "vertical",
    labelLimit: 0,
  },
};

/** Trailing moving average over `window` values. */
export function smooth(values: number[], window: number): number[] {
  const out: number[] = [];
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    sum += values[i];
    if (i >= window) sum -= values[i - window];
    out.push(sum / Math.min(i + 1, window));
  }
  return out;
}

function series(history: HistoryRow[], fields: [keyof HistoryRow, string][], window: number) {
  const rows: Record<string, unknown>[] = [];
  for (const [field, label] of fields) {
    const raw = history.map((r) => r[field] as number);
    const sm = smooth(raw, window);
    history.forEach((r, i) => {
      rows.push({ iteration: r.iteration, series: label, raw: raw[i], smoothed: sm[i] });
    });
  }
  return rows;
}

/** What a raw-and-smoothed line plot shows. */
interface LinePlot {
  title: string;
  subtitle: string | string[];
  /** Rows of {iteration, series, raw, smoothed}. */
  rows: unknown[];
  yTitle: string;
  /** Series name -> colour. */
  colors: [string, string][];
  /** More layers (a rule at 0.5). */
  extra?: Spec[];
  /** More of the y encoding (a fixed domain). */
  y?: Spec;
}

function rawAndSmoothed(
  { title, subtitle, rows, yTitle, colors, extra = [], y = {} }: LinePlot,
): Spec {
  const last = Math.max(1, ...rows.map((r) => (r as { iteration: number }).iteration));
  const x = {
    field: "iteration",
    type: "quantitative",
    title: "adversarial iteration",
    scale: { domain: [0, last], nice: false },
  };
  const color = {
    field: "series",
    type: "nominal",
    title: null,
    scale: { domain: colors.map((c) => c[0]), range: colors.map((c) => c[1]) },
  };
  return {
    $schema: VL_SCHEMA,
    title: { text: title, subtitle },
    width: 640,
    height: 260,
    data: { values: rows },
    layer: [
      {
        mark: { type: "line", opacity: 0.25, strokeWidth: 1 },
        encoding: { x, y: { field: "raw", type: "quantitative", title: yTitle, ...y }, color },
      },
      {
        mark: { type: "line", strokeWidth: 2.2 },
        encoding: { x, y: { field: "smoothed", type: "quantitative" }, color },
      },
      ...extra,
    ],
    config: CONFIG,
  };
}

/** D(real) and D(fake) per iteration with the rule at 0.5 the lecture hopes for. */
export function dSpec(history: HistoryRow[]): Spec {
  const window = Math.max(1, Math.round(history.length / 40));
  const names: [keyof HistoryRow, string, string][] = [
    ["dRealAfterPolice", "D(real), after the police step", "#d62728"],
    ["dFakeAfterPolice", "D(fake), after the police step", "#ff7f0e"],
    ["dFakeAfterCounterfeiter", "D(fake), after the counterfeiter step", "#1f77b4"],
  ];
  const rows = series(history, names.map(([f, l]) => [f, l]), window);
  const rule = {
    data: { values: [{ y: 0.5 }] },
    mark: { type: "rule", strokeDash: [6, 4], color: "#444" },
    encoding: { y: { field: "y", type: "quantitative" } },
  };
  return rawAndSmoothed({
    title: "What the police says, per iteration",
    subtitle: [
      `thin: every iteration; thick: moving average over ${window}`,
      "dashed: 0.5, what the optimal police says when fakes match the data",
    ],
    rows,
    yTitle: "mean police output",
    colors: names.map(([, l, c]) => [l, c]),
    extra: [rule],
    y: { scale: { domain: [0, 1] } },
  });
}

/** Both losses per iteration. */
export function lossSpec(history: HistoryRow[]): Spec {
  const window = Math.max(1, Math.round(history.length / 40));
  const rows = series(history, [["policeLoss", "police loss"], [
    "counterfeiterLoss",
    "counterfeiter loss",
  ]], window);
  return rawAndSmoothed({
    title: "Losses (binary cross-entropy, epoch means)",
    subtitle: `thin: every iteration; thick: moving average over ${window}`,
    rows,
    yTitle: "loss",
    colors: [["police loss", "#d62728"], ["counterfeiter loss", "#1f77b4"]],
  });
}

const METRICS: [keyof ImageMetrics | "dReal" | "dFake", string][] = [
  ["frechet", "Frechet distance (lower is better)"],
  ["classifierScore", "classifier score (higher is better, max 10)"],
  ["classesCovered", "classes covered (of 10)"],
  ["klToUniform", "KL of class histogram to uniform (nats)"],
];

/** Evaluator metrics per checkpoint, each with the real-data reference as a dashed rule. */
export function metricsSpec(
  points: CheckpointMetrics[],
  reference: ImageMetrics,
  lastIteration: number,
): Spec {
  const rows: Record<string, unknown>[] = [];
  for (const p of points) {
    const it = p.iteration === "final" ? lastIteration : p.iteration;
    for (const [k, label] of METRICS) {
      rows.push({
        iteration: it,
        metric: label,
        value: p[k as keyof CheckpointMetrics],
        source: "generated",
      });
    }
  }
  for (const [k, label] of METRICS) {
    rows.push({
      metric: label,
      value: reference[k as keyof ImageMetrics],
      source: "real test vs real train",
    });
  }
  return {
    $schema: VL_SCHEMA,
    title: {
      text: "Evaluator metrics per checkpoint",
      subtitle: [
        "dashed: real test images scored the same way",
        "(what a perfect counterfeiter reaches)",
      ],
    },
    data: { values: rows },
    facet: {
      row: {
        field: "metric",
        type: "nominal",
        title: null,
        header: { labelAngle: 0, labelOrient: "top", labelAnchor: "start", labelFontSize: 12 },
      },
    },
    spec: {
      width: 520,
      height: 110,
      layer: [
        {
          transform: [{ filter: "datum.source === 'generated'" }],
          mark: { type: "line", point: true },
          encoding: {
            x: { field: "iteration", type: "quantitative", title: "adversarial iteration" },
            y: { field: "value", type: "quantitative", title: null, scale: { zero: false } },
          },
        },
        {
          transform: [{ filter: "datum.source !== 'generated'" }],
          mark: { type: "rule", strokeDash: [6, 4], color: "#c44" },
          encoding: { y: { field: "value", type: "quantitative" } },
        },
      ],
    },
    resolve: { scale: { y: "independent" } },
    config: CONFIG,
  };
}

/** Class histogram of generated digits beside the real test images'. */
export function histogramSpec(generated: number[], real: number[]): Spec {
  const share = (h: number[]) => {
    const t = h.reduce((a, b) => a + b, 0) || 1;
    return h.map((c) => c / t);
  };
  const rows = [
    ...share(generated).map((s, d) => ({
      digit: String(d),
      source: "generated (final)",
      share: s,
    })),
    ...share(real).map((s, d) => ({ digit: String(d), source: "real test images", share: s })),
  ];
  return {
    $schema: VL_SCHEMA,
    title: {
      text: "Which digits the counterfeiter draws",
      subtitle: "classes as the evaluator sees them; mode collapse shows as missing bars",
    },
    width: 520,
    height: 220,
    data: { values: rows },
    mark: "bar",
    encoding: {
      x: { field: "digit", type: "nominal", title: "digit", axis: { labelAngle: 0 } },
      xOffset: { field: "source", type: "nominal" },
      y: { field: "share", type: "quantitative", title: "share of samples", axis: { format: "%" } },
      color: { field: "source", type: "nominal", title: null },
    },
    config: CONFIG,
  };
}
