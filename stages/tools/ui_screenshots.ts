/**
 * The README's dashboard screenshots: `deno run -A stages/tools/ui_screenshots.ts RESULTS
 * OUT_DIR` starts `deno task ui` over RESULTS and saves the runs page, a run, a comparison of
 * the first two runs and the first sweep as PNGs (headless chromium).
 */
import { join } from "node:path";
import { chromiumPath, launchChromium } from "./chromium.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

async function main([results, out]: string[]) {
  if (!results || !out) throw new Error("usage: ui_screenshots.ts RESULTS OUT_DIR");
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "stages/app.ts"), "ui", "--results", results, "--port", "0"],
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/http:\/\/\S+\//.test(text)) text += (await reader.read()).value ?? "";
  reader.cancel().catch(() => {});
  const base = text.match(/(http:\/\/\S+)\//)![1];
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
    child.kill();
  }
}

if (import.meta.main) await main(Deno.args);
