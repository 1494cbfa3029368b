/**
 * Debian's chromium, headless, through npm's puppeteer-core: the dashboard's benchmark and
 * screenshots use it, and so do the browser tests (tests/browser.ts).
 */
import puppeteer, { type Browser } from "puppeteer-core";

/** The chromium binary's path on PATH, or null. */
export function chromiumPath(): string | null {
  for (const name of ["chromium", "chromium-browser", "google-chrome"]) {
    try {
      const out = new Deno.Command("which", { args: [name], stdout: "piped", stderr: "null" })
        .outputSync();
      const path = new TextDecoder().decode(out.stdout).trim();
      if (out.code === 0 && path) return path;
    } catch {
      // no `which`, or not this one
    }
  }
  return null;
}

/** Starts chromium headless at `path`. */
export async function launchChromium(path: string): Promise<Browser> {
  return await puppeteer.launch({
    executablePath: path,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
}
