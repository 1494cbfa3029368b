/**
 * Debian's chromium, headless, for the tests that need a real browser. Tests that use it are
 * skipped, saying so, where there is none, except in CI (.ci/run installs it).
 */

/** The chromium binary on PATH, or null. */
export function findChromium(): string | null {
  for (const name of ["chromium", "chromium-browser", "google-chrome"]) {
    try {
      const out = new Deno.Command(name, { args: ["--version"], stdout: "null", stderr: "null" })
        .outputSync();
      if (out.code === 0) return name;
    } catch {
      // not this one
    }
  }
  if (Deno.env.get("CI")) {
    throw new Error("CI must run the browser tests: .ci/run installs chromium");
  }
  console.error("no chromium on PATH: skipping the browser tests (apt-get install chromium)");
  return null;
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
