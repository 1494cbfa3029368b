/**
 * `deno task bench --ui`: the dashboard's two promises, measured in headless chromium on this
 * machine. First paint: the runs page over 1,000 runs (synthetic records, as many files as
 * real ones) from navigation to the table drawn (target: under 1 s). Live delay: a row
 * appended to a running run's live file until the run page has drawn it (target: under 2 s),
 * over 10 rows at uneven times.
 */
import { join } from "node:path";
import { resolveConfig } from "../schema.ts";
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

/** Runs the ui benchmark; returns its figures. */
export async function uiBench(root: string) {
  const path = chromiumPath();
  if (!path) throw new Error("deno task bench --ui needs chromium (apt-get install chromium)");
  const results = await Deno.makeTempDir({ prefix: "gan-ui-bench-" });
  const live = await (async () => {
    await syntheticRuns(root, results, 1000);
    return await liveRun(results);
  })();
  const ui = await startUiProcess(root, results);
  const browser = await launchChromium(path);
  try {
    const page = await browser.newPage();
    const paints: number[] = [];
    for (let i = 0; i < 5; i++) {
      await page.goto(`${ui.base}/`, { waitUntil: "domcontentloaded" });
      await page.waitForSelector("main[data-painted]", { timeout: 30000 });
      paints.push(Number(await page.$eval("main", (m) => m.getAttribute("data-painted"))));
    }
    const rows = await page.$eval("table.grid", (t) => t.getAttribute("data-rows"));
    console.log(
      `runs page over ${rows} runs: first paint ${median(paints).toFixed(0)} ms (median of 5; ${
        paints.map((p) => p.toFixed(0)).join(", ")
      }); target under 1000 ms`,
    );
    await live.row();
    await page.goto(`${ui.base}/run/${live.name}`, { waitUntil: "domcontentloaded" });
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
    return { firstPaintMs: paints, liveDelayMs: delays, runs: Number(rows) };
  } finally {
    await browser.close();
    await ui.stop();
    live.stop();
    await Deno.remove(results, { recursive: true }).catch(() => {});
  }
}
