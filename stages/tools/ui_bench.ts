/**
 * `deno task bench --ui`: the dashboard's and the runs table's promises, measured in headless
 * chromium on this machine at 1k, 10k and 100k runs (synthetic records, as many files as real
 * ones; `--ui-sizes` to choose). `runs`: the command's wall time (its table of 500 rows),
 * building the run index and then answering from it. First paint: the runs page from
 * navigation to the table drawn. Targets: under 1 s each. Then the server's answer to views
 * the index does not order (a sort by a figure, a query), which load every row once. Live delay (at the first size): a row appended to a running run's
 * live file until the run page has drawn it (target: under 2 s), over 10 rows at uneven times.
 */
import { join } from "node:path";
import { resolveConfig } from "../schema.ts";
import type { Page } from "puppeteer-core";
import { chromiumPath, launchChromium } from "./chromium.ts";
import { startUiProcess } from "./ui_process.ts";

/** Writes `n` finished runs of the quick config (learning rates and seeds varied). */
export async function syntheticRuns(root: string, results: string, n: number) {
  const base = await resolveConfig(join(root, "configs/quick.json"));
  for (let i = 0; i < n; i++) {
    const name = `bench-${String(i).padStart(4, "0")}`;
    const dir = join(results, "runs", `${name}-${String(i).padStart(12, "0")}`);
    await Deno.mkdir(dir, { recursive: true });
    const config = {
      ...base,
      name,
      seed: i % 5,
      optimizer: { ...base.optimizer, learningRate: [1e-4, 3e-4, 1e-3][i % 3] },
    };
    const summary = {
      frechet: 20 + (i % 37),
      classifierScore: 5 + (i % 4),
      classesCovered: 10,
      dReal: 0.5 + (i % 10) / 40,
      dFake: 0.5 - (i % 10) / 40,
      goalMarksMet: i % 6,
    };
    const record = {
      name,
      runDir: dir,
      configHash: String(i).padStart(64, "0"),
      seed: config.seed,
      config,
      stages: [{ stage: "evaluate", key: "k", status: "ran", reason: "", seconds: 3, summary }],
      started: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
      finished: new Date(Date.UTC(2026, 0, 1, 0, 1, i)).toISOString(),
      seconds: 60,
      status: "ok",
      complete: true,
      environment: {},
    };
    await Deno.writeTextFile(join(dir, "run.json"), JSON.stringify(record));
  }
}

/** A run in flight: its status (kept fresh) and a live file to append rows to. */
async function liveRun(results: string) {
  const dir = join(results, "runs", "live-000000000000");
  await Deno.mkdir(join(dir, "live"), { recursive: true });
  const status = () =>
    Deno.writeTextFile(
      join(dir, "live", "status.json"),
      JSON.stringify({
        state: "running",
        pid: Deno.pid,
        started: new Date().toISOString(),
        updated: new Date().toISOString(),
        stage: "adversarial",
        stages: ["adversarial"],
      }),
    );
  await status();
  const beat = setInterval(status, 1000);
  const file = await Deno.open(join(dir, "live", "adversarial.jsonl"), {
    append: true,
    create: true,
  });
  let it = 0;
  const row = async () => {
    it++;
    const t = Date.now();
    const r = {
      t,
      kind: "iteration",
      of: 1000,
      iteration: it,
      dRealAfterPolice: 0.6,
      dFakeAfterCounterfeiter: 0.4,
      policeLoss: 1,
      counterfeiterLoss: 1,
    };
    await file.write(new TextEncoder().encode(JSON.stringify(r) + "\n"));
    return { iteration: it, t };
  };
  return { name: "live-000000000000", row, stop: () => (clearInterval(beat), file.close()) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Wall seconds of `deno task runs` over `results` (its table to nowhere). */
async function runsSeconds(root: string, results: string, more: string[] = []): Promise<number> {
  const t = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(root, "stages/app.ts"), "runs", "--results", results, ...more],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (out.code !== 0) throw new Error(new TextDecoder().decode(out.stderr));
  return (performance.now() - t) / 1000;
}

/** Milliseconds from navigation to the runs table drawn, `times` times. */
async function firstPaints(base: string, page: Page, times: number): Promise<number[]> {
  const paints: number[] = [];
  for (let i = 0; i < times; i++) {
    await page.goto(`${base}/`, { waitUntil: "domcontentloaded", timeout: 300000 });
    await page.waitForSelector("main[data-painted]", { timeout: 300000 });
    paints.push(Number(await page.$eval("main", (m) => m.getAttribute("data-painted"))));
  }
  return paints;
}

/**
 * Runs the ui benchmark at each of `sizes` runs; returns its figures. The live delay is
 * measured at the first size.
 */
export async function uiBench(root: string, sizes = [1000, 10000, 100000]) {
  const path = chromiumPath();
  if (!path) throw new Error("deno task bench --ui needs chromium (apt-get install chromium)");
  const browser = await launchChromium(path);
  const bySize: Record<string, unknown>[] = [];
  // the command's own start (its imports), to read the listing's share off the totals
  const empty = await Deno.makeTempDir({ prefix: "gan-ui-bench-empty-" });
  await Deno.mkdir(join(empty, "runs"));
  let liveDelayMs: number[] = [];
  try {
    for (const [i, n] of sizes.entries()) {
      const results = await Deno.makeTempDir({ prefix: "gan-ui-bench-" });
      const live = i === 0
        ? await (async () => {
          await syntheticRuns(root, results, n);
          return await liveRun(results);
        })()
        : (await syntheticRuns(root, results, n), null);
      const ui = await startUiProcess(root, results);
      try {
        // the first listing builds the run index; the next ones answer from it
        const cold = await runsSeconds(root, results);
        const warm = [await runsSeconds(root, results), await runsSeconds(root, results)];
        const limited = [
          await runsSeconds(root, results, ["--limit", "50"]),
          await runsSeconds(root, results, ["--limit", "50"]),
        ];
        const startup = await runsSeconds(root, empty);
        const page = await browser.newPage();
        const paints = await firstPaints(ui.base, page, i === 0 ? 5 : 3);
        const rows = await page.$eval("table.grid", (t) => t.getAttribute("data-drawn"));
        // views the index does not order: the first loads every row into the server, once
        const view = async (q: string) => {
          const t = performance.now();
          const r = await fetch(`${ui.base}/api/runs?limit=500&${q}`);
          if (!r.ok) throw new Error(`/api/runs?${q}: ${r.status}`);
          await r.json();
          return performance.now() - t;
        };
        const sorted = [await view("sort=frechet"), await view("sort=frechet&desc=1")];
        const filtered = await view(`q=${encodeURIComponent("frechet < 25 and seed = 2")}`);
        console.log(
          `${n} runs: runs ${cold.toFixed(2)} s building the index, then ${
            median(warm).toFixed(2)
          } s (--limit 50: ${median(limited).toFixed(2)} s; on no runs: ${
            startup.toFixed(2)
          } s); dashboard first paint ${
            median(paints).toFixed(0)
          } ms (median of ${paints.length}: ${
            paints.map((p) => p.toFixed(0)).join(", ")
          }; ${rows} rows drawn); targets under 1 s; a sorted view ${
            sorted[0].toFixed(0)
          } ms at first (every row loaded), then ${sorted[1].toFixed(0)} ms; a query ${
            filtered.toFixed(0)
          } ms`,
        );
        bySize.push({
          runs: n,
          runsColdS: cold,
          runsWarmS: warm,
          runsLimit50S: limited,
          runsNoRunsS: startup,
          firstPaintMs: paints,
          sortedViewMs: sorted,
          queryViewMs: filtered,
        });
        if (live) liveDelayMs = await liveDelays(ui.base, page, live);
        await page.close();
      } finally {
        await ui.stop();
        live?.stop();
        await Deno.remove(results, { recursive: true }).catch(() => {});
      }
    }
  } finally {
    await browser.close();
    await Deno.remove(empty, { recursive: true }).catch(() => {});
  }
  return { sizes: bySize, liveDelayMs };
}

/** Row written -> row drawn on the run page of the run in flight, over 10 rows. */
async function liveDelays(
  base: string,
  page: Page,
  live: Awaited<ReturnType<typeof liveRun>>,
): Promise<number[]> {
  await live.row();
  await page.goto(`${base}/run/${live.name}`, { waitUntil: "domcontentloaded" });
  await page.waitForSelector("#d-plot[data-rows]", { timeout: 30000 });
  const delays: number[] = [];
  for (let i = 0; i < 10; i++) {
    await new Promise((r) => setTimeout(r, 200 + 97 * i)); // uneven: not in step with polling
    const { iteration, t } = await live.row();
    await page.waitForFunction(
      `Number(document.querySelector("#d-plot")?.getAttribute("data-rows")) >= ${iteration}`,
      { timeout: 10000, polling: 20 },
    );
    const drawn = Number(await page.$eval("#d-plot", (e) => e.getAttribute("data-last-drawn")));
    delays.push(drawn - t);
  }
  console.log(
    `live delay, row written -> row drawn: median ${median(delays)} ms, max ${
      Math.max(...delays)
    } ms over ${delays.length} rows; target under 2000 ms`,
  );
  return delays;
}
