/**
 * The runs table's columns and layouts: a table fitted to a width (columns that do not fit
 * are left out, and named), CSV, or JSON. A column is a name the user can pick with
 * `--columns` and a cell per row; halving rungs of one point are shown under it, indented.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { csvLine, fitColumns } from "./runs_table.ts";
 * assert.equal(csvLine(["a", 'say "hi", twice', "3"]), 'a,"say ""hi"", twice",3');
 * const cols = [{ name: "run", width: 10 }, { name: "x", width: 40 }, { name: "y", width: 40 }];
 * assert.deepEqual(fitColumns(cols, 60, ["y", "x"]).map((c) => c.name), ["run", "x"]);
 * ```
 */

/** A column as the table lays it out. */
/** A table cell's value: numbers to 4 significant digits, anything else as JSON. */
export const showValue = (v: unknown): string =>
  typeof v === "number" ? String(Number(v.toPrecision(4))) : JSON.stringify(v);

export interface Sized {
  name: string;
  width: number;
}

/**
 * The columns that fit in `width` (two spaces between columns), dropping those in `dropOrder`
 * first to last until they do; columns not in `dropOrder` always stay.
 */
export function fitColumns<C extends Sized>(cols: C[], width: number, dropOrder: string[]): C[] {
  let kept = [...cols];
  const total = () => kept.reduce((n, c) => n + c.width, 0) + 2 * (kept.length - 1);
  for (const name of dropOrder) {
    if (total() <= width) break;
    kept = kept.filter((c) => c.name !== name);
  }
  return kept;
}

/** One CSV line (RFC 4180 quoting). */
export function csvLine(cells: string[]): string {
  return cells.map((c) => (/[",\n\r]/.test(c) ? `"${c.replaceAll('"', '""')}"` : c)).join(",");
}

/** A fixed-width table: a header, a rule, the rows. */
export function textTable(head: string[], body: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(w[i])).join("  ").trimEnd();
  return [line(head), line(w.map((n) => "-".repeat(n))), ...body.map(line)].join("\n");
}

/** Short headers for config paths: the last segment, or more where two would clash. */
export function shortHeaders(paths: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of paths) {
    const parts = p.split(".");
    let n = 1;
    const short = (k: number) => parts.slice(-k).join(".");
    while (
      n < parts.length &&
      paths.some((q) => q !== p && q.split(".").slice(-n).join(".") === short(n))
    ) n++;
    out[p] = short(n);
  }
  return out;
}

/** The width to fit the table to: the terminal's, else $COLUMNS, else no limit. */
export function outputWidth(): number {
  try {
    if (Deno.stdout.isTerminal()) return Deno.consoleSize().columns;
  } catch {
    // no console size: fall through
  }
  const env = Number(Deno.env.get("COLUMNS"));
  return Number.isInteger(env) && env > 20 ? env : Infinity;
}
