/** `deno task sweep <file> [--jobs N] [--dry-run] [--results DIR] [--backend NAME]`. */
import { parseArgs } from "node:util";
import { dirname, join } from "node:path";
import type { App } from "./app.ts";
import { type BackendName, selectBackend } from "./backends/mod.ts";
import { UsageError } from "./errors.ts";
import { Progress } from "./progress.ts";
import { planRun, type StagePlan } from "./runner.ts";
import { checkResultsDir, Store, writeFileAtomic } from "./store.ts";
import { loadSweep, overridesOf, type PointRecord, runPoint, sweepDir } from "./sweep.ts";

const USAGE = `usage: deno task sweep <sweep.json> [options]
  --jobs N         run N points at once, in separate processes (default 1)
  --dry-run        list the points and what each can reuse from the cache; run nothing
  --results DIR    results folder (default: results)
  --backend NAME   override every point's backend`;

async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch {
    return null;
  }
}

/** Runs the sweep command; returns the exit code (1 when a point failed). */
export async function sweepCommand(app: App, args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        jobs: { type: "string", default: "1" },
        "dry-run": { type: "boolean", default: false },
        results: { type: "string", default: "results" },
        backend: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(`expected one sweep file\n${USAGE}`);
  const jobs = Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1) {
    throw new UsageError(`--jobs ${values.jobs}: expected an integer >= 1`);
  }
  const results = values.results;
  await checkResultsDir(results, { write: !values["dry-run"] });
  const sweep = await loadSweep(positionals[0], join(results, "sweeps"), app);
  const dir = sweepDir(results, sweep);
  const progress = new Progress();
  const store = new Store(results);

  // what each point can reuse
  const plans: StagePlan[][] = [];
  for (const cfg of sweep.configs) {
    const backend = await selectBackend((values.backend ?? cfg.backend) as BackendName, {
      flushDenormals: cfg.flushDenormals,
    });
    plans.push(await planRun({ cfg, stages: app.stages, results, runtime: backend.runtime }));
  }
  const shared = new Map<string, number>();
  for (const plan of plans) {
    for (const p of plan) {
      shared.set(`${p.stage}/${p.key}`, (shared.get(`${p.stage}/${p.key}`) ?? 0) + 1);
    }
  }
  const distinct = new Set(
    plans.flatMap((plan) => plan.filter((p) => !p.cached).map((p) => `${p.stage}/${p.key}`)),
  );
  console.log(
    `sweep ${sweep.name}: ${sweep.points.length} points, ${distinct.size} stage runs needed (the rest cached or shared)`,
  );
  sweep.points.forEach((p, i) => {
    const plan = plans[i];
    const cached = plan.filter((s) => s.cached).map((s) => s.stage);
    const sharedWith = plan.filter((s) => !s.cached && (shared.get(`${s.stage}/${s.key}`) ?? 0) > 1)
      .map((s) => s.stage);
    console.log(
      `  p${String(i).padStart(3, "0")}  ${overridesOf(p).join(" ") || "(base)"}\n        cached: ${
        cached.join(", ") || "none"
      }${sharedWith.length ? `; shared with other points: ${sharedWith.join(", ")}` : ""}`,
    );
  });
  if (values["dry-run"]) {
    console.log(dir);
    return 0;
  }

  await Deno.mkdir(join(dir, "logs"), { recursive: true });
  const recordPath = join(dir, "sweep.json");
  const previous = await readJson<{ points: PointRecord[] }>(recordPath);
  const records: PointRecord[] = sweep.points.map((overrides, index) => ({
    index,
    overrides,
    status: "pending",
    runDir: null,
    error: null,
    seconds: null,
    summaries: {},
    keys: {},
  }));
  // resume: a point that finished before and whose results are all still cached is done
  for (const r of records) {
    const old = previous?.points?.[r.index];
    if (old?.status === "done" && plans[r.index].every((p) => p.cached)) Object.assign(r, old);
  }
  const save = () =>
    writeFileAtomic(
      recordPath,
      JSON.stringify(
        { name: sweep.name, basePath: sweep.basePath, spec: sweep.spec, points: records },
        null,
        2,
      ) + "\n",
    );
  await save();
  const todo = records.filter((r) => r.status !== "done");
  if (todo.length < records.length) {
    progress.log(`${records.length - todo.length} points already done; running ${todo.length}`);
  }
  let next = 0, finished = 0;
  const worker = async () => {
    while (next < todo.length) {
      const r = todo[next++];
      const name = sweep.configs[r.index].name;
      r.status = "running";
      await save();
      const t0 = performance.now();
      r.log = join(dir, "logs", `${name}.${Deno.pid}.log`);
      const res = await runPoint(
        app.entry,
        sweep.basePath,
        r.overrides,
        name,
        results,
        r.log,
        values.backend,
      );
      r.seconds = (performance.now() - t0) / 1000;
      if (res.ok) {
        r.runDir = res.lastLine.endsWith("report.html") ? dirname(res.lastLine) : res.lastLine;
        const rec = await readJson<{ stages: { stage: string; key: string; summary?: unknown }[] }>(
          join(r.runDir, "run.json"),
        );
        for (const s of rec?.stages ?? []) {
          r.keys[s.stage] = s.key;
          if (s.summary) r.summaries[s.stage] = s.summary;
        }
        r.status = "done";
      } else {
        r.status = "failed";
        r.error = res.error;
      }
      finished++;
      progress.log(
        `[${finished}/${todo.length}] ${name} ${r.status} in ${r.seconds.toFixed(1)}s${
          r.error ? `: ${r.error}` : ""
        }  (${overridesOf(r.overrides).join(" ")})`,
      );
      await save();
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, todo.length) }, worker));
  const metric = sweep.spec.rank?.metric ?? app.sweep.defaultRank;
  const rank = {
    metric,
    order: sweep.spec.rank?.order ??
      (app.sweep.higherIsBetter.includes(metric) ? "desc" as const : "asc" as const),
  };
  const report = await app.sweep.writeReport(dir, sweep.name, records, rank, store.root);
  const failed = records.filter((r) => r.status === "failed").length;
  progress.log(
    `${records.length - failed} of ${records.length} points done${
      failed ? `, ${failed} failed` : ""
    }`,
  );
  console.log(report);
  return failed ? 1 : 0;
}
