/**
 * A headless chromium page through npm's puppeteer-core (Debian's chromium, found on PATH),
 * for the dashboard's tests and its screenshots.
 */
import puppeteer, { type Browser } from "puppeteer-core";
import { findChromium } from "./browser.ts";

/** Starts chromium headless; null where there is none (see findChromium). */
export async function launchBrowser(): Promise<Browser | null> {
  const bin = findChromium();
  if (!bin) return null;
  const path = new TextDecoder().decode(
    new Deno.Command("which", { args: [bin], stdout: "piped" }).outputSync().stdout,
  ).trim();
  return await puppeteer.launch({
    executablePath: path,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
}
