/**
 * The README's dashboard screenshots: `deno run -A stages/tools/ui_screenshots.ts RESULTS
 * OUT_DIR` starts `deno task ui` over RESULTS and saves the runs page, a run, a comparison of
 * the first two runs and the first sweep as PNGs (headless chromium).
 */
import { join } from "node:path";
import { chromiumPath, launchChromium } from "./chromium.ts";
import { startUiProcess } from "./ui_process.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

async function main([results, out]: string[]) {
  if (!results || !out) throw new Error("usage: ui_screenshots.ts RESULTS OUT_DIR");
  const { base, stop } = await startUiProcess(ROOT, results);
  const browser = await launchChromium(chromiumPath()!);
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1200, height: 820 });
    const api = await (await fetch(`${base}/api/runs`)).json();
    const plain = api.runs.filter((r: { sweep: string | null }) => !r.sweep);
    const sweeps = await (await fetch(`${base}/api/sweeps`)).json();
    const pages: [string, string][] = [
      ["ui-runs.png", "/"],
      ["ui-run.png", `/run/${plain[0].run}`],
      ["ui-compare.png", `/compare?runs=${plain[0].run},${plain[1].run}`],
      ["ui-sweep.png", `/sweep/${sweeps[0].name}`],
    ];
    for (const [file, path] of pages) {
      await page.goto(base + path, { waitUntil: "networkidle0" });
      await page.waitForSelector("main[data-ready='1']", { timeout: 30000 });
      await new Promise((r) => setTimeout(r, 500));
      await page.screenshot({ path: join(out, file) });
      console.log(join(out, file));
    }
  } finally {
    await browser.close();
    await stop();
  }
}

if (import.meta.main) await main(Deno.args);
