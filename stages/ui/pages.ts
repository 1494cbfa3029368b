/**
 * The dashboard's HTML shell: one page per view, the same styles, the vendored Vega builds
 * and `client.js`, which draws the page from the server's JSON.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pageHtml } from "./pages.ts";
 * assert.match(pageHtml("run", "a<b", "a<b"), /data-arg="a&#60;b"/);
 * ```
 */
import { escapeHtml } from "../../pipeline/run_record.ts";

const STYLE = `
body { font: 14px system-ui, sans-serif; margin: 0; color: #222; }
nav { background: #263238; padding: .5em 1.5em; }
nav a { color: #fff; margin-right: 1.5em; text-decoration: none; }
main { padding: 1em 1.5em; max-width: 1300px; }
h1 { font-size: 1.4em; margin: .3em 0; } h2 { font-size: 1.1em; margin-top: 1.4em; }
.sub { color: #555; }
table.grid { border-collapse: collapse; margin: .5em 0; }
table.grid th, table.grid td { border-bottom: 1px solid #e3e3e3; padding: .25em .6em; text-align: right; white-space: nowrap; }
table.grid th { cursor: pointer; background: #f5f5f5; position: sticky; top: 0; }
table.grid td:nth-child(-n+3) { text-align: left; }
table.samples img, .grids img { image-rendering: pixelated; width: 140px; }
.grids { display: flex; flex-wrap: wrap; gap: .5em; } figure { margin: 0; text-align: center; }
.plot { width: 100%; max-width: 1100px; }
.filter { padding: .3em; width: 28em; }
.controls { display: flex; gap: 1.5em; align-items: center; flex-wrap: wrap; }
.plot-links { font-size: .85em; text-align: right; max-width: 1100px; }
.st-running { color: #1565c0; font-weight: 600; } .st-failed, .error { color: #c62828; }
.st-interrupted { color: #8d6e63; }
td.met { color: #2e7d32; } td.missed { color: #c62828; }
table.grid td:has(.point-status) { text-align: left; white-space: normal; min-width: 28em; }
iframe.report { width: 100%; height: 1400px; border: 1px solid #ddd; }
pre { background: #f7f7f7; padding: .6em; max-height: 20em; overflow: auto; }
`;

/** The page; `client.js` draws `page` with `arg` (a run name, runs to compare, a sweep). */
export function pageHtml(page: string, arg: string, title: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<link rel="icon" href="data:,">
<title>${escapeHtml(title)} - gan-pipeline</title>
<style>${STYLE}</style>
<script src="/vendor/vega.min.js"></script>
<script src="/vendor/vega-lite.min.js"></script>
<script src="/vendor/vega-embed.min.js"></script>
<script src="/client.js"></script>
</head><body>
<nav><a href="/">runs</a><span style="color:#90a4ae">gan-pipeline</span></nav>
<main id="app" data-page="${escapeHtml(page)}" data-arg="${escapeHtml(arg)}">loading...</main>
</body></html>
`;
}
