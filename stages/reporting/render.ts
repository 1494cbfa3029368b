/**
 * Vega-Lite to SVG (vega, renderer "none": no canvas needed) and SVG to PNG (resvg), with the
 * DejaVu fonts shipped by the `dejavu-fonts-ttf` package: resvg draws no text at all without
 * fonts, silently, so they are never left to the system.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderSvg } from "./render.ts";
 * const svg = await renderSvg({ data: { values: [{ x: 1 }] }, mark: "point", encoding: { x: { field: "x", type: "quantitative" } } });
 * assert(svg.startsWith("<svg"));
 * ```
 */
import * as vega from "vega";
import * as vl from "vega-lite";
import { Resvg } from "@resvg/resvg-js";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

/** The Vega-Lite schema URL our specs declare. */
export const VL_SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";

/** The font family plots use, and the one resvg gets. */
export const FONT = "DejaVu Sans";

/** Paths of the shipped DejaVu fonts. */
export function fontFiles(): string[] {
  const req = createRequire(import.meta.url);
  const dir = join(dirname(req.resolve("dejavu-fonts-ttf/package.json")), "ttf");
  return ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf"].map((f) => join(dir, f));
}

/** The vega-lite package folder (its build/ holds the JSON schema). */
export function vegaLiteDir(): string {
  const req = createRequire(import.meta.url);
  return dirname(dirname(req.resolve("vega-lite")));
}

/** Compiles a Vega-Lite spec and renders it to an SVG string. */
export async function renderSvg(spec: Record<string, unknown>): Promise<string> {
  // deno-lint-ignore no-explicit-any
  const compiled = vl.compile(spec as any).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

/** Renders SVG to PNG at `scale` times its size, with the shipped fonts. */
export function svgToPng(svg: string, scale = 2): Uint8Array {
  const r = new Resvg(svg, {
    background: "white",
    fitTo: { mode: "zoom", value: scale },
    font: { fontFiles: fontFiles(), loadSystemFonts: false, defaultFontFamily: FONT },
  });
  return r.render().asPng();
}

/** Renders SVG to raw RGBA pixels (for checks that a plot draws what it should). */
export function svgToPixels(svg: string): { width: number; height: number; rgba: Uint8Array } {
  const img = new Resvg(svg, {
    background: "white",
    font: { fontFiles: fontFiles(), loadSystemFonts: false, defaultFontFamily: FONT },
  }).render();
  return { width: img.width, height: img.height, rgba: new Uint8Array(img.pixels) };
}
