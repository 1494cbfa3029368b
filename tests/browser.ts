/**
 * Debian's chromium, headless, for the tests that need a real browser. Tests that use it are
 * skipped, saying so, where there is none, except in CI (.ci/run installs it).
 */
import type { Browser } from "puppeteer-core";
import { chromiumPath, launchChromium } from "../stages/tools/chromium.ts";

/** The chromium binary on PATH, or null (a failure in CI). */
export function findChromium(): string | null {
  const path = chromiumPath();
  if (path) return path;
  if (Deno.env.get("CI")) {
    throw new Error("CI must run the browser tests: .ci/run installs chromium");
  }
  console.error("no chromium on PATH: skipping the browser tests (apt-get install chromium)");
  return null;
}

/** Starts chromium headless through puppeteer-core; null where there is none. */
export async function launchBrowser(): Promise<Browser | null> {
  const path = findChromium();
  return path ? await launchChromium(path) : null;
}

/** The DOM of `url` after its scripts ran (up to `budgetMs` of virtual time). */
export async function dumpDom(chromium: string, url: string, budgetMs = 20000): Promise<string> {
  const profile = await Deno.makeTempDir();
  try {
    const out = await new Deno.Command(chromium, {
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        `--user-data-dir=${profile}`,
        `--virtual-time-budget=${budgetMs}`,
        "--dump-dom",
        url,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return new TextDecoder().decode(out.stdout);
  } finally {
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
}
