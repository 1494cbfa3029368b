/**
 * What the run report and the sweep report share: escaping, number formatting and the page
 * style (readable on screen and in print, DejaVu Sans as in the plots).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { esc, fmt } from "./html.ts";
 * assert(esc("<a>") === "&#60;a&#62;");
 * assert(fmt(0.12345) === "0.123" && fmt(3) === "3" && fmt(undefined) === "");
 * ```
 */
import { escapeHtml } from "../../pipeline/run_record.ts";

/** Escapes text for HTML (the engine's escaping, which the run record uses too). */
export const esc: (s: unknown) => string = escapeHtml;

/** A number for a table: integers as they are, others to `digits` decimals; absent as "". */
export function fmt(v: number | undefined, digits = 3): string {
  return v === undefined ? "" : Number.isInteger(v) ? String(v) : v.toFixed(digits);
}

/** The reports' page style. */
export const PAGE_STYLE = `
body { font-family: "DejaVu Sans", system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.1em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
td, th { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; } th { background: #f6f6f6; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; break-inside: avoid; } figcaption { color: #555; font-size: 0.9em; }
.grids { display: flex; flex-wrap: wrap; gap: 10px; } .grids figure { margin: 0; text-align: center; } .grids img { width: 152px; image-rendering: pixelated; border: 1px solid #ccc; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.note { background: #fff8e5; border-left: 4px solid #e0b000; padding: 0.5em 0.8em; }
@media print { body { max-width: none; } h2 { break-after: avoid; } .grids img { width: 120px; } }
`;
