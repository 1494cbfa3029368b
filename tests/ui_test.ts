/**
 * `deno task ui`: the dashboard in a real browser (Debian's chromium, headless, through
 * puppeteer-core): the runs page lists runs, compare overlays two, a run's curve grows while it
 * trains, a sweep page shows why a point stopped. And its safety, without a browser: Host
 * headers it does not serve, paths outside the results folder, anything but GET, bad options.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { APP } from "../stages/app.ts";
import { allowedHosts, handler } from "../stages/ui/server.ts";
import type { Page } from "puppeteer-core";
import { findChromium, launchBrowser } from "./browser.ts";
import { startUiProcess } from "../stages/tools/ui_process.ts";
import { syntheticRuns } from "../stages/tools/ui_bench.ts";
import {
  cli,
  cliSpawn,
  ROOT,
  sweepCli,
  tinyConfig,
  writeConfig,
  writeIdxFiles,
} from "./helpers.ts";

/** Two tiny runs (learning rates differ) in a fresh results folder. */
async function twoRuns() {
  const dir = await Deno.makeTempDir({ prefix: "gan-ui-" });
  const files = await writeIdxFiles(dir);
  const cfg = await writeConfig(dir, "tiny", tinyConfig(files));
  const results = join(dir, "results");
  const names: string[] = [];
  for (const lr of ["0.001", "0.003"]) {
    const r = await cli([
      "run",
      cfg,
      "--results",
      results,
      "--set",
      `optimizer.learningRate=${lr}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    names.push(r.stdout.trim().split("\n").at(-1)!.split("/").at(-2)!);
  }
  return { dir, files, cfg, results, names };
}

/** Starts `deno task ui` on a free port; its address and a stop function. */
const startUi = (results: string) => startUiProcess(ROOT, results);

const browserHere = findChromium() !== null;

/** `deno task ui` over `results` and a chromium page: `fn` gets the page and the ui's address. */
async function withUiPage(results: string, fn: (page: Page, base: string) => Promise<void>) {
  const ui = await startUi(results);
  const browser = (await launchBrowser())!;
  try {
    await fn(await browser.newPage(), ui.base);
  } finally {
    await browser.close();
    await ui.stop();
  }
}

Deno.test({
  name: "the ui in chromium: runs listed, two compared, a sweep's stopped point says why",
  ignore: !browserHere,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { dir, results, names } = await twoRuns();
    // a halving sweep: some points stop at the first rung, with a reason
    const base = join(dir, "tiny.json");
    const sweep = await sweepCli([
      "--base",
      base,
      "-m",
      "adversarial.fitBatchSize=4,8,16",
      "seed=1,2",
      "--search",
      "halving",
      "--rungs",
      "2,4",
      "--results",
      results,
      "--name",
      "h",
    ]);
    assert.equal(sweep.code, 0, sweep.stderr);
    const ui = await startUi(results);
    const browser = (await launchBrowser())!;
    try {
      const page = await browser.newPage();
      await page.goto(`${ui.base}/`);
      await page.waitForSelector("main[data-ready='1']");
      const listed = await page.$$eval(
        "tbody tr",
        (rows) => rows.map((r) => r.getAttribute("data-run")),
      );
      for (const n of names) assert(listed.includes(n), `${n} not listed: ${listed}`);
      // a finished run's page ends with its static report
      const runPage = await browser.newPage();
      await runPage.goto(`${ui.base}/run/${names[0]}`);
      await runPage.waitForSelector("main[data-ready='1']");
      const src = await runPage.$eval("iframe.report", (e) => e.getAttribute("src"));
      assert.match(src ?? "", /^\/files\/runs\/tiny-\w+\/report\.html$/);
      assert.equal((await fetch(`${ui.base}${src}`)).status, 200);
      await runPage.close();
      // select two, compare
      for (const n of names) await page.click(`input[type=checkbox][data-run="${n}"]`);
      await Promise.all([page.waitForNavigation(), page.click("#compare")]);
      await page.waitForSelector("main[data-ready='1']");
      assert.equal(await page.$eval("#compare-d", (e) => e.getAttribute("data-runs")), "2");
      const legend = await page.$eval("#compare-d", (e) => e.textContent ?? "");
      for (const n of names) assert(legend.includes(n), `legend lacks ${n}`);
      assert.match(await page.$eval("#config-diff", (e) => e.textContent ?? ""), /learningRate/);
      // the sweep page
      const sweepName = [...Deno.readDirSync(join(results, "sweeps"))].find((e) =>
        e.name.startsWith("h-")
      )!.name;
      // while a point runs the page polls, and updates its plots' data in place: the same SVG
      const record = join(results, "sweeps", sweepName, "sweep.json");
      const original = await Deno.readTextFile(record);
      const rec = JSON.parse(original);
      rec.points[0].status = "running";
      await Deno.writeTextFile(record, JSON.stringify(rec));
      // nobody holds the sweep's lock: a killed sweep's "running" point is interrupted
      const { sweepDetail } = await import("../stages/ui/data.ts");
      const label = (await sweepDetail(APP, results, sweepName))!.points[0];
      assert.equal(label.status, "interrupted");
      // a live sweep's points hold it (shared): then the point is running
      const held = await Deno.open(join(results, "sweeps", sweepName, ".lock"), {
        write: true,
        create: true,
      });
      await held.lock(false);
      assert.equal((await sweepDetail(APP, results, sweepName))!.points[0].status, "running");
      await page.goto(`${ui.base}/sweep/${sweepName}`);
      await page.waitForSelector(".plot svg");
      await page.evaluate(`globalThis.firstSvg = document.querySelector(".plot svg")`);
      await new Promise((r) => setTimeout(r, 2500)); // two polls
      assert.equal(
        await page.evaluate(
          `globalThis.firstSvg.isConnected && document.querySelector(".plot svg") === globalThis.firstSvg`,
        ),
        true,
        "the sweep page re-embedded its plot instead of updating its data",
      );
      assert.match(
        (await page.$$eval(".point-status", (els) => els.map((e) => e.textContent))).join(),
        /running/,
      );
      await Deno.writeTextFile(record, original);
      held.close();
      await page.waitForSelector("main[data-ready='1']");
      const statuses = await page.$$eval(".point-status", (els) => els.map((e) => e.textContent));
      assert(
        statuses.some((s) =>
          /^stopped at rung 0 \(2\): frechet [\d.]+ \(mean of its 2 seeds\) not in the best/.test(
            s ?? "",
          )
        ),
        statuses.join(" | "),
      );
      // each setting's goal marks over its two seeds
      const goals = await page.$$eval(
        "#goals tr.goal-row",
        (rs) => rs.map((r) => [...r.children].map((c) => c.textContent ?? "")),
      );
      assert.equal(goals.length, 3, JSON.stringify(goals));
      for (const g of goals) {
        assert.equal(g[1], "2");
        assert.match(g[2], /^\d of 5$/);
        assert.match(g[3], /met on \d of 2$/);
      }
    } finally {
      await browser.close();
      await ui.stop();
    }
  },
});

Deno.test({
  name: "the ui in chromium: a run's D curve grows while it trains",
  ignore: !browserHere,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "gan-ui-live-" });
    const files = await writeIdxFiles(dir);
    const long = tinyConfig(files, {
      adversarial: { iterations: 4000, batchSize: 16, fitBatchSize: 8, checkpointEvery: 1000 },
    });
    const cfg = await writeConfig(dir, "long", long);
    const results = join(dir, "results");
    const run = cliSpawn(["run", cfg, "--results", results]);
    for (let i = 0; i < 600; i++) {
      if (await Deno.stat(results).then(() => true, () => false)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const ui = await startUi(results).catch((e) => {
      run.kill();
      throw e;
    });
    const browser = (await launchBrowser())!;
    try {
      // wait for the loop to start
      let name = "";
      for (let i = 0; i < 600 && !name; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const runs = await (await fetch(`${ui.base}/api/runs`)).json();
        const r = runs.runs.find((r: { progress: unknown }) => r.progress);
        if (r) name = r.run;
      }
      assert(name, "the run never showed progress");
      const page = await browser.newPage();
      await page.goto(`${ui.base}/run/${name}`);
      await page.waitForSelector("#d-plot[data-rows]");
      const rows = () => page.$eval("#d-plot", (e) => Number(e.getAttribute("data-rows")));
      const first = await rows();
      await new Promise((r) => setTimeout(r, 2000));
      const later = await rows();
      assert(later > first, `the curve did not grow: ${first} -> ${later}`);
      assert.match(
        await page.$eval("#state", (e) => e.textContent ?? ""),
        /^running: adversarial, iteration \d+\/4000/,
      );
    } finally {
      run.kill();
      await run.status;
      await browser.close();
      await ui.stop();
    }
  },
});

Deno.test({
  name: "the ui's runs view lives in its address: a query filter (with its error), the sort, tags",
  ignore: !browserHere,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { results, names } = await twoRuns();
    const tagged = await cli([
      "tag",
      names[1],
      "best",
      "--note",
      "the faster rate",
      "--results",
      results,
    ]);
    assert.equal(tagged.code, 0, tagged.stderr);
    await withUiPage(results, async (page, base) => {
      const rowsShown = () =>
        page.$$eval("tbody tr", (rows) => rows.map((r) => r.getAttribute("data-run")));
      // a shared address: the query and the sort come back as they were
      await page.goto(
        `${base}/?q=${encodeURIComponent("optimizer.learningRate > 0.002")}&sort=run&desc=1`,
      );
      await page.waitForSelector("main[data-ready='1']");
      await page.waitForFunction(
        `document.querySelector("table.grid")?.getAttribute("data-rows") === "1"`,
      );
      assert.deepEqual(await rowsShown(), [names[1]]);
      assert.match(await page.$eval("th:nth-child(2)", (e) => e.textContent ?? ""), /run \u25bc/);
      assert.match(await page.$eval("tbody", (e) => e.textContent ?? ""), /best/);
      // a tag query, typed: the address follows
      await page.$eval(
        "input.filter",
        (e) => void ((e as unknown as { value: string }).value = ""),
      );
      await page.type("input.filter", "tag = best");
      await page.waitForFunction(`new URL(location.href).searchParams.get("q") === "tag = best"`);
      assert.deepEqual(await rowsShown(), [names[1]]);
      // a bad query says why in one line and shows nothing
      await page.$eval(
        "input.filter",
        (e) => void ((e as unknown as { value: string }).value = ""),
      );
      await page.type("input.filter", "frechett < 1");
      await page.waitForFunction(
        `(document.querySelector(".query-error")?.textContent ?? "") !== ""`,
      );
      assert.match(
        await page.$eval(".query-error", (e) => e.textContent ?? ""),
        /unknown field "frechett" \(did you mean "frechet"\?\)/,
      );
      assert.deepEqual(await rowsShown(), []);
      // words still find rows that contain them
      await page.$eval(
        "input.filter",
        (e) => void ((e as unknown as { value: string }).value = ""),
      );
      await page.type("input.filter", names[0].slice(-6));
      await page.waitForFunction(
        `document.querySelector("table.grid")?.getAttribute("data-rows") === "1"`,
      );
      assert.deepEqual(await rowsShown(), [names[0]]);
    });
  },
});

Deno.test({
  name:
    "the ui's charts: smoothing, x axis and log scale kept in the address, downloads; no console warnings on any page",
  ignore: !browserHere,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { dir, results, names } = await twoRuns();
    const sweep = await sweepCli([
      "--base",
      join(dir, "tiny.json"),
      "-m",
      "seed=1,2",
      "--results",
      results,
      "--name",
      "s",
    ]);
    assert.equal(sweep.code, 0, sweep.stderr);
    const sweepName = [...Deno.readDirSync(join(results, "sweeps"))][0].name;
    await withUiPage(results, async (page, base) => {
      const said: string[] = [];
      page.on("console", (m) => {
        if (m.type() === "warn" || m.type() === "error") said.push(`${m.type()}: ${m.text()}`);
      });
      page.on("pageerror", (e) => said.push(`pageerror: ${e}`));
      page.on("requestfailed", (r) => said.push(`failed: ${r.url()}`));
      page.on("response", (r) => {
        if (r.status() >= 400) said.push(`${r.status()}: ${r.url()}`);
      });
      for (
        const path of [
          "/",
          `/run/${names[0]}`,
          `/compare?runs=${names.join(",")}`,
          `/sweep/${sweepName}`,
        ]
      ) {
        await page.goto(`${base}${path}`);
        await page.waitForSelector("main[data-ready='1']");
        await new Promise((r) => setTimeout(r, 300));
      }
      assert.deepEqual(said, [], said.join("\n"));
      // the sweep's points table keeps its filter in the address too
      await page.goto(`${base}/sweep/${sweepName}?q=no-such-point`);
      await page.waitForSelector("main[data-ready='1']");
      assert.equal(await page.$eval("table.grid", (e) => e.getAttribute("data-rows")), "0");
      // a run page from a shared address: its settings come back
      await page.goto(`${base}/run/${names[0]}?smooth=0.9&x=time&logy=1`);
      await page.waitForSelector("main[data-ready='1']");
      await page.waitForSelector("#d-plot svg");
      assert.equal(await page.$eval("#smooth-value", (e) => e.textContent), "0.90");
      assert.equal(
        await page.$eval("#x-axis", (e) => (e as unknown as { value: string }).value),
        "time",
      );
      assert.equal(
        await page.$eval("#log-y", (e) => (e as unknown as { checked: boolean }).checked),
        true,
      );
      assert.match(await page.$eval("#d-plot", (e) => e.textContent ?? ""), /wall time \(s\)/);
      // moving the slider redraws and updates the address
      await page.$eval("#smooth", (e) => {
        (e as unknown as { value: string }).value = "0.3";
        e.dispatchEvent(new Event("change"));
      });
      await page.waitForFunction(`new URL(location.href).searchParams.get("smooth") === "0.3"`);
      // PNG/SVG in each chart's menu, and a CSV of the curves
      assert.ok((await page.$$("#d-plot details.vega-actions, #d-plot .vega-actions")).length > 0);
      const links = await page.$$eval("#d-plot a.csv", (as) => as.map((a) => a.textContent));
      assert.deepEqual(links, ["CSV"]);
      assert.deepEqual(said, [], said.join("\n"));
    });
  },
});

Deno.test({
  name:
    "the runs page over 1,200 runs draws 500 at first, more on request; filter and sort see all",
  ignore: !browserHere,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const results = await Deno.makeTempDir({ prefix: "gan-ui-many-" });
    await syntheticRuns(ROOT, results, 1200);
    await withUiPage(results, async (page, base) => {
      const drawn = () => page.$$eval("tbody tr[data-run]", (rows) => rows.length);
      const grid = (attr: string) => page.$eval("table.grid", (t, a) => t.getAttribute(a), attr);
      await page.goto(`${base}/?sort=run&desc=1`);
      await page.waitForSelector("main[data-ready='1']");
      assert.equal(await grid("data-rows"), "1200");
      assert.equal(await drawn(), 500);
      // sorted over every run, not over the 500 drawn
      assert.equal(
        await page.$eval("tbody tr[data-run]", (r) => r.getAttribute("data-run")),
        "bench-1199-000000001199",
      );
      assert.match(await page.$eval("button.more", (b) => b.textContent ?? ""), /700 not drawn/);
      await page.click("button.more");
      await page.waitForFunction(`document.querySelectorAll("tbody tr[data-run]").length === 1200`);
      assert.equal(await page.$$eval("button.more", (b) => b.length), 0);
      // the server pages: the page gets the rows it draws, with how many there are
      const api = async (q: string) => {
        const r = await fetch(`${base}/api/runs?${q}`);
        return { status: r.status, ...(await r.json()) };
      };
      const first = await api("limit=10");
      assert.deepEqual([first.runs.length, first.total, first.matched], [10, 1200, 1200]);
      assert.equal(first.runs[0].run, "bench-0000-000000000000");
      const best = await api("limit=3&sort=frechet&offset=1");
      assert.deepEqual(best.runs.map((r: { figures: { frechet: number } }) => r.figures.frechet), [
        20,
        20,
        20,
      ]);
      const words = await api(`limit=5&q=${encodeURIComponent("bench-11")}`);
      assert.deepEqual([words.runs.length, words.matched], [5, 100]);
      const bad = await api(`q=${encodeURIComponent("frechett < 1")}`);
      assert.equal(bad.status, 400);
      assert.match(bad.error, /unknown field "frechett"/);
      // a filter finds a run that was never drawn at first
      await page.goto(`${base}/?q=${encodeURIComponent("run ~ bench-0007-")}`);
      await page.waitForFunction(
        `document.querySelector("table.grid")?.getAttribute("data-rows") === "1"`,
      );
      assert.equal(await drawn(), 1);
    });
  },
});

Deno.test("the ui refuses other Host headers, paths outside the results, writes; bad options exit 2", async () => {
  const dir = await Deno.makeTempDir({ prefix: "gan-ui-safe-" });
  const results = join(dir, "results");
  await Deno.mkdir(join(results, "runs"), { recursive: true });
  await Deno.writeTextFile(join(dir, "secret.txt"), "TOP-SECRET");
  await Deno.writeTextFile(join(results, "inside.txt"), "inside");
  await Deno.symlink(join(dir, "secret.txt"), join(results, "link.txt"));
  const serve = handler(APP, results, allowedHosts("127.0.0.1", 8470, []));
  const get = (path: string, host = "127.0.0.1:8470", method = "GET") =>
    serve(new Request(`http://127.0.0.1:8470${path}`, { method, headers: { host } }));
  assert.equal((await get("/files/inside.txt")).status, 200);
  assert.equal(await (await get("/files/inside.txt")).text(), "inside");
  for (
    const p of [
      "/files/../secret.txt",
      "/files/%2e%2e/secret.txt",
      "/files/%2e%2e%2fsecret.txt",
      "/files/link.txt",
      "/files/..%5csecret.txt",
    ]
  ) {
    const r = await get(p);
    assert.equal(r.status, 404, p);
    assert.doesNotMatch(await r.text(), /TOP-SECRET/);
  }
  const rebinding = await get("/api/runs", "evil.example:8470");
  assert.equal(rebinding.status, 403);
  assert.match(await rebinding.text(), /refused: Host evil\.example:8470/);
  assert.equal((await get("/api/runs", "localhost:8470")).status, 200);
  assert.equal((await get("/api/runs", "127.0.0.1:8470", "POST")).status, 405);
  for (
    const [args, want] of [
      [["--port", "x"], /--port x: expected an integer from 0 to 65535/],
      [["--results", join(dir, "nope")], /--results \S+nope: no such folder/],
    ] as [string[], RegExp][]
  ) {
    const r = await cli(["ui", ...args]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, want);
  }
});

Deno.test("ui --host 0.0.0.0 warns once and answers at loopback and this machine's addresses", async () => {
  // the Host headers a wildcard listener accepts
  const any = allowedHosts("0.0.0.0", 8470, [], ["10.1.2.3", "fe80::1"]);
  for (const h of ["127.0.0.1:8470", "localhost:8470", "10.1.2.3:8470", "[fe80::1]:8470"]) {
    assert.ok(any.has(h), h);
  }
  assert.ok(!any.has("evil.example:8470"));
  // the real command: a warning on stderr, and a loopback request answered (it was refused)
  const results = join(await Deno.makeTempDir({ prefix: "gan-ui-any-" }), "results");
  await Deno.mkdir(join(results, "runs"), { recursive: true });
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(ROOT, "stages/app.ts"),
      "ui",
      "--results",
      results,
      "--port",
      "0",
      "--host",
      "0.0.0.0",
    ],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  try {
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    while (!/:(\d+)\//.test(out)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`the ui did not start: ${out}`);
      out += value;
    }
    reader.cancel().catch(() => {});
    const port = out.match(/:(\d+)\//)![1];
    const r = await fetch(`http://127.0.0.1:${port}/api/runs`);
    assert.equal(r.status, 200, await r.text());
    child.kill();
    const err = new TextDecoder().decode((await child.output()).stderr);
    const warnings = err.split("\n").filter((l) => l.startsWith("ui: warning:"));
    assert.equal(warnings.length, 1, err);
    assert.match(
      warnings[0],
      /listening on 0\.0\.0\.0, not this machine alone: .*127\.0\.0\.1:\d+.*--allow-host/,
    );
  } finally {
    try {
      child.kill();
    } catch { /* gone */ }
  }
});

Deno.test("the ui serves a cache entry's files and figures only while they match its seal (409 naming it otherwise)", async () => {
  const { results, names } = await twoRuns();
  const serve = handler(APP, results, allowedHosts("127.0.0.1", 8470, []));
  const get = (path: string) =>
    serve(new Request(`http://127.0.0.1:8470${path}`, { headers: { host: "127.0.0.1:8470" } }));
  const run = names[0];
  const grid = `/files/runs/${run}/artifacts/evaluate/grids/final.png`;
  assert.equal((await get(`/api/run/${run}`)).status, 200);
  assert.equal((await get(grid)).status, 200);
  const flip = async (path: string) => {
    const real = await Deno.realPath(path);
    const b = await Deno.readFile(real);
    b[b.length - 2] ^= 1;
    await Deno.writeFile(real, b);
  };
  await flip(join(results, "runs", run, "artifacts", "evaluate", "grids", "final.png"));
  const png = await get(grid);
  assert.equal(png.status, 409);
  assert.match(
    await png.text(),
    /^damaged cache entry evaluate\/\w{12}: grids\/final\.png does not match its seal; rebuild it with: deno task run <its config> --verify/,
  );
  await flip(join(results, "runs", run, "artifacts", "evaluate", "metrics.json"));
  const api = await get(`/api/run/${run}`);
  assert.equal(api.status, 409);
  assert.match(
    await api.text(),
    /damaged cache entry evaluate\/\w{12}: metrics\.json does not match its seal/,
  );
  // the other run's entries are sound and still served
  assert.equal((await get(`/api/run/${names[1]}`)).status, 200);
});
