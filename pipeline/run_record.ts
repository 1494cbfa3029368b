/**
 * The run record (`run.json`): what it holds, its HTML table, and the run folder's report
 * (the App's report file from the last stage's entry, the record filled in at its marker).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { escapeHtml } from "./run_record.ts";
 * assert.equal(escapeHtml("<a & b>"), "&#60;a &#38; b&#62;");
 * ```
 */
import { join, relative } from "node:path";
import type { EngineConfig } from "./schema.ts";
import type { KeyInputs } from "./stage.ts";
import { type Store, writeFileAtomic } from "./store.ts";

/** One stage's line in run.json. */
export interface StageRecord {
  stage: string;
  key: string;
  status: "cached" | "ran" | "failed" | "skipped";
  reason: string;
  seconds: number;
  /** A cached stage: the seconds its entry took to compute when it was built. */
  builtSeconds?: number;
  /** What the key was made of (the key's recipe); absent for a stage that never planned. */
  inputs?: KeyInputs;
  summary?: Record<string, unknown>;
  error?: string;
}

/** The record written to run.json. */
export interface RunRecord {
  name: string;
  runDir: string;
  configHash: string;
  seed: number;
  config: EngineConfig;
  stages: StageRecord[];
  started: string;
  finished: string | null;
  seconds: number;
  status: "ok" | "failed";
  /** Whether the run covered every stage (not cut short by `--until`). */
  complete?: boolean;
  environment: Record<string, unknown>;
  /** The run folder's report, when the last stage made one. */
  report?: string;
}

/**
 * What makes `rec` no run record (the fields readers use, checked by shape), or null. A
 * listing skips such a record, naming it, rather than failing on it.
 */
export function recordProblem(rec: unknown): string | null {
  const isObj = (x: unknown): x is Record<string, unknown> =>
    typeof x === "object" && x !== null && !Array.isArray(x);
  if (!isObj(rec)) return `not a run record (${Array.isArray(rec) ? "an array" : String(rec)})`;
  const want: [string, (x: unknown) => boolean, string][] = [
    ["configHash", (x) => typeof x === "string", "a string"],
    ["config", isObj, "an object"],
    ["status", (x) => x === "ok" || x === "failed", '"ok" or "failed"'],
    ["seconds", (x) => typeof x === "number", "a number"],
    ["stages", Array.isArray, "a list"],
  ];
  for (const [k, ok, what] of want) {
    if (!ok(rec[k])) return `its ${k} is not ${what}`;
  }
  const bad = (rec.stages as unknown[]).findIndex((s) =>
    !isObj(s) || typeof s.stage !== "string" || typeof s.status !== "string" ||
    typeof s.seconds !== "number" || (s.key !== undefined && typeof s.key !== "string")
  );
  return bad >= 0 ? `its stages[${bad}] is not a stage record` : null;
}

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The run record as an HTML table (for the report). */
export function recordHtml(record: RunRecord): string {
  const rows = record.stages.map((s) =>
    `<tr><td>${escapeHtml(s.stage)}</td><td>${escapeHtml(s.status)}</td><td>${
      s.seconds.toFixed(1)
    }</td><td><code>${
      escapeHtml((s.key || "-").slice(0, 12))
    }</code></td><td style="text-align:left">${
      escapeHtml(s.status === "cached" ? "" : s.reason)
    }</td></tr>`
  ).join("\n");
  const env = record.environment as Record<string, unknown> & {
    git?: { commit: string | null; dirty: boolean | null };
    runtime?: Record<string, unknown>;
  };
  const runtime = Object.entries(env.runtime ?? {}).map(([k, v]) => `${k} ${v}`).join(", ");
  const git = env.git?.commit
    ? `${env.git.commit.slice(0, 10)}${env.git.dirty ? " (dirty)" : ""}`
    : "unknown";
  return `<table><tr><th>stage</th><th>status</th><th>seconds</th><th>key</th><th>why it ran</th></tr>
${rows}</table>
<p class="sub">Started ${escapeHtml(record.started)}, ${record.seconds.toFixed(1)} s in all${
    env.cpu ? ` on ${escapeHtml(env.cpu)}` : ""
  }. Runtime: ${escapeHtml(runtime || "none")}; Deno ${escapeHtml(env.deno)}, git ${
    escapeHtml(git)
  }. Config hash <code>${
    escapeHtml(record.configHash.slice(0, 12))
  }</code>; the full record is <code>run.json</code> beside this file.</p>`;
}

/**
 * Copies the last stage's report file, if it made one, into the run folder with this run's
 * record filled in at the marker.
 */
export async function publishReport(
  record: RunRecord,
  store: Store,
  { file, marker }: ReportHandoff,
): Promise<string | undefined> {
  const last = record.stages.at(-1);
  if (!last) return undefined;
  let html: string;
  try {
    html = await Deno.readTextFile(join(store.dir(last.stage, last.key), file));
  } catch {
    return undefined;
  }
  const path = join(record.runDir, file);
  await writeFileAtomic(path, html.replace(marker, recordHtml(record)));
  return path;
}

/** Where a run's report comes from: a file of the last stage's entry, and where its record goes. */
export interface ReportHandoff {
  /** The file's name, in the last stage's entry and in the run folder. */
  file: string;
  /** The text in it that the run record (HTML) replaces. */
  marker: string;
}

/** A run folder's link to a stage's entry (`artifacts/<stage>`), or the folder of them all. */
export function artifactsDir(runDir: string, stage?: string): string {
  return stage ? join(runDir, "artifacts", stage) : join(runDir, "artifacts");
}

/**
 * Links `<run folder>/artifacts/<stage>` to each stage's cache entry (relative links, so a
 * results folder can move), so the models, samples and history a run holds are found without
 * knowing the cache's layout. A link is replaced whole (written beside it, renamed over it);
 * one whose entry `gc` removed later dangles, as the run's record says it may.
 */
export async function linkArtifacts(record: RunRecord, store: Store): Promise<void> {
  const dir = artifactsDir(record.runDir);
  await Deno.mkdir(dir, { recursive: true });
  for (const s of record.stages) {
    if (!s.key || (s.status !== "ran" && s.status !== "cached")) continue;
    const link = join(dir, s.stage), tmp = `${link}.${Deno.pid}.tmp`;
    await Deno.remove(tmp).catch(() => {});
    await Deno.symlink(relative(dir, store.dir(s.stage, s.key)), tmp);
    await Deno.rename(tmp, link);
  }
}
