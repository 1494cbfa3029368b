/**
 * Progress on long work. On a terminal: one live line on stderr (stage, i/N, rate, ETA and
 * the latest key figures), redrawn at most ten times a second. Elsewhere (CI, a pipe): a
 * plain line every tenth of the work or every 15 s, whichever comes first, so logs stay
 * readable.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Progress } from "./progress.ts";
 * const lines: string[] = [];
 * const p = new Progress({ live: false, write: (l) => lines.push(l) });
 * p.start("training", 10);
 * for (let i = 1; i <= 10; i++) p.update(i, { "D(real)": 0.9 });
 * p.done();
 * // in logs, a plain line every tenth of the work, with the latest figures
 * assert.equal(lines.length, 10);
 * assert.match(lines[9], /^training 10\/10 .* D\(real\) 0\.900$/);
 * ```
 */
export interface ProgressOptions {
  /** Print nothing (tests). */
  quiet?: boolean;
  /** Force the live (terminal) or plain style; default: live when stderr is a terminal. */
  live?: boolean;
  /** Where plain lines and messages go (default stderr). */
  write?: (line: string) => void;
}

const enc = new TextEncoder();

function fmtSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${s.toFixed(0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.round((s % 3600) / 60)).padStart(2, "0")}m`;
}

function fmtFigure(v: number | string): string {
  if (typeof v === "string") return v;
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(1) : v.toPrecision(3);
}

/** A progress reporter shared by the runner and the stages. */
export class Progress {
  #quiet: boolean;
  #live: boolean;
  #write: (line: string) => void;
  #label = "";
  #total = 0;
  #start = 0;
  #startI = 0;
  #lastDraw = 0;
  #lastPlain = 0;
  #lastPlainI = 0;
  #drawn = false;

  constructor({ quiet = false, live, write }: ProgressOptions = {}) {
    this.#quiet = quiet;
    this.#live = live ?? (!quiet && Deno.stderr.isTerminal());
    this.#write = write ?? ((line) => Deno.stderr.writeSync(enc.encode(line + "\n")));
  }

  /** A message line (clears the live bar first). */
  log(line: string): void {
    if (this.#quiet) return;
    this.#clear();
    this.#write(line);
  }

  /** Starts a bar of `total` steps; `from` is where a resumed task begins. */
  start(label: string, total: number, from = 0): void {
    this.#label = label;
    this.#total = total;
    this.#start = performance.now();
    this.#startI = from;
    this.#lastPlain = this.#start;
    this.#lastPlainI = from;
  }

  /** Reports that `i` of `total` steps are done, with the latest figures. */
  update(i: number, figures: Record<string, number | string> = {}): void {
    if (this.#quiet) return;
    const now = performance.now();
    const elapsed = (now - this.#start) / 1000;
    const rate = (i - this.#startI) / Math.max(elapsed, 1e-9);
    const eta = (this.#total - i) / rate;
    const figs = Object.entries(figures).map(([k, v]) => `${k} ${fmtFigure(v)}`).join("  ");
    const head = `${this.#label} ${i}/${this.#total}`;
    const speed = rate >= 1 ? `${rate.toFixed(1)}/s` : `${(1 / rate).toFixed(2)}s/it`;
    if (this.#live) {
      if (now - this.#lastDraw < 100 && i < this.#total) return;
      this.#lastDraw = now;
      const width = 20;
      const filled = Math.round((width * i) / Math.max(this.#total, 1));
      const bar = "#".repeat(filled) + "-".repeat(width - filled);
      const line = `${head} [${bar}] ${speed} eta ${fmtSeconds(eta)}  ${figs}`;
      const cols = Deno.consoleSize?.().columns ?? 120;
      Deno.stderr.writeSync(enc.encode(`\r\x1b[2K${line.slice(0, cols - 1)}`));
      this.#drawn = true;
    } else {
      const step = Math.max(1, Math.ceil(this.#total / 10));
      if (i < this.#total && i - this.#lastPlainI < step && now - this.#lastPlain < 15000) return;
      this.#lastPlain = now;
      this.#lastPlainI = i;
      this.#write(`${head} ${speed} eta ${fmtSeconds(eta)} ${figs}`.trimEnd());
    }
  }

  /** Ends the bar. */
  done(): void {
    this.#clear();
  }

  #clear(): void {
    if (this.#drawn) {
      Deno.stderr.writeSync(enc.encode("\r\x1b[2K"));
      this.#drawn = false;
    }
  }
}
