/**
 * The command line of an application: `run <config>` (with `--explain` to plan only),
 * `sweep` and `verify`. Exit codes: 0 success, 1 a stage failed, 2 bad usage or config. On
 * success the last line on stdout is the run folder (or its report). The application's
 * entry module calls {@link runCli} with itself.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { main } from "./cli.ts";
 * import { ENGINE_FIELDS, obj } from "./schema.ts";
 * const app = {
 *   name: "demo",
 *   entry: import.meta.url,
 *   config: { schema: obj("demo", { ...ENGINE_FIELDS }) },
 *   stages: [],
 *   figures: () => ({}),
 *   sweep: { rankMetrics: [], defaultRank: "", higherIsBetter: [], writeReport: () => Promise.resolve("") },
 * };
 * assert.equal(await main(app, ["nosuch"]), 2, "an unknown command is a usage error");
 * ```
 */
import { type App, type RuntimeChoice, runtimeOf } from "./app.ts";
import { parseCommand } from "./args.ts";
import { loadConfig } from "./config.ts";
import { describeError, exitCodeOf, UsageError } from "./errors.ts";
import { gitState } from "./git.ts";
import { Progress } from "./progress.ts";
import { planRun, runDirOf, type RunOptions, runPipeline } from "./runner.ts";
import type { EngineConfig } from "./schema.ts";
import { checkResultsDir } from "./store.ts";
import { completionsCommand } from "./completions.ts";
import { gcCommand } from "./gc_cli.ts";
import { runInterruptHooks } from "./interrupt.ts";
import { diffCommand, runsCommand } from "./runs_cli.ts";
import { tagCommand } from "./tag_cli.ts";
import { runSlurmTask } from "./sweep/slurm.ts";
import { sweepCommand } from "./sweep/cli.ts";
import { verifyCommand } from "./verify_cli.ts";

const usage = (app: App) =>
  `usage: deno task run <config.json> [path=value]... [options]
  --set path=value   override a config field (repeatable), e.g. --set seed=3 or just seed=3
  --results DIR      results folder (default: results)
  --backend NAME     shorthand for --set backend=NAME (the application's engine, e.g. cpu)
  --explain          say per stage whether it is cached or why it would run; run nothing
  --force STAGE      re-run a stage even if cached (repeatable; "all" for every stage)
  --until STAGE      stop after this stage
  --verify           compare every cached file's SHA-256 with its seal (sizes are always checked)
  --quiet            no progress output
stages: ${app.stages.map((s) => s.name).join(", ")}`;

/** Runs the CLI with arguments; returns the exit code. */
export async function main(app: App, args: string[]): Promise<number> {
  try {
    return await dispatch(app, args);
  } catch (e) {
    const code = exitCodeOf(e);
    console.error(`error: ${describeError(e)}`);
    if (app.debugVariable && Deno.env.get(app.debugVariable)) console.error(e);
    if (e instanceof UsageError) console.error(e.usage ?? usage(app));
    return code;
  }
}

async function dispatch(app: App, args: string[]): Promise<number> {
  const [command, ...rest] = args;
  if (command === "run") return await runCommand(app, rest);
  if (command === "sweep") return await sweepCommand(app, rest);
  if (command === "verify") return await verifyCommand(rest);
  if (command === "runs") return await runsCommand(app, rest);
  if (command === "diff") return await diffCommand(app, rest);
  if (command === "tag") return await tagCommand(app, rest);
  if (command === "gc") return await gcCommand(rest);
  if (command === "sweep-task") {
    // a Slurm task of a sweep (see sweep/slurm.ts): sweep-task <sweep folder> <array index>
    if (rest.length < 2 || rest.length > 3 || !/^\d+$/.test(rest[1])) {
      throw new UsageError("sweep-task <sweep folder> <array index> [job file] (run by Slurm)");
    }
    return await runSlurmTask(rest[0], Number(rest[1]), rest[2]);
  }
  if (command === "completions") {
    return await completionsCommand(app, rest, () => helpTexts(app));
  }
  const own = app.commands?.[command];
  if (own) return await own(app as unknown as App, rest);
  throw new UsageError(
    `unknown command ${command ?? "(none)"}`,
    `usage: deno task ${commandNames(app).join("|")} ... (each answers --help)`,
  );
}

/** The commands a user can call (the engine's, then the application's). */
export function commandNames(app: App): string[] {
  const engine = ["run", "sweep", "verify", "runs", "diff", "tag", "gc", "completions"];
  return [...engine, ...Object.keys(app.commands ?? {})];
}

/** Each command's `--help` text, as the command itself prints it. */
async function helpTexts(app: App): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const log = console.log;
  try {
    for (const name of commandNames(app).filter((n) => n !== "completions")) {
      let text = "";
      console.log = (...xs: unknown[]) => void (text += xs.join(" ") + "\n");
      await dispatch(app, [name, "--help"]);
      out[name] = text;
    }
  } finally {
    console.log = log;
  }
  return out;
}

/** A bare `path=value` override on the command line (Hydra's form). */
const OVERRIDE = /^[A-Za-z_][\w.]*=/;

/** The options of `run`. */
interface RunArgs {
  set: string[];
  results: string;
  backend?: string;
  explain: boolean;
  force: string[];
  until?: string;
  quiet: boolean;
  verify: boolean;
}

/** `run --explain`: each stage's key and why it would run; runs nothing. */
async function explain(opts: RunOptions<EngineConfig>, results: string): Promise<number> {
  for (const p of await planRun(opts)) {
    console.log(
      `${p.stage.padEnd(20)} ${(p.key ?? "(pending)").slice(0, 12).padEnd(12)}  ${
        p.cached ? "cached" : `runs because ${p.reason}`
      }`,
    );
  }
  console.log(runDirOf(results, opts.cfg).dir);
  return 0;
}

/** What run.json records of the machine and the software, beside the runtime facts. */
async function environmentOf(choice: RuntimeChoice): Promise<Record<string, unknown>> {
  return {
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    os: `${Deno.build.os}-${Deno.build.arch}`,
    ...choice.environment,
    git: await gitState(),
  };
}

/** `run CONFIG [options]`. */
async function runCommand(app: App, args: string[]): Promise<number> {
  const parsed = parseCommand<RunArgs>(args, usage(app), {
    set: { type: "string", multiple: true, default: [] },
    results: { type: "string", default: "results" },
    backend: { type: "string" },
    explain: { type: "boolean", default: false },
    force: { type: "string", multiple: true, default: [] },
    until: { type: "string" },
    quiet: { type: "boolean", default: false },
    verify: { type: "boolean", default: false },
  }, { positionals: true });
  if (!parsed) return 0;
  const { values } = parsed;
  // Hydra's habit: `run CONFIG key=value ...` is `--set key=value ...`
  const [config, ...rest] = parsed.positionals;
  const bare = rest.filter((a) => OVERRIDE.test(a));
  const stray = rest.filter((a) => !OVERRIDE.test(a));
  if (config === undefined || stray.length) {
    throw new UsageError(
      config === undefined
        ? "missing config file"
        : `expected one config file, got ${
          parsed.positionals.join(" ")
        } (overrides are key=value or --set key=value)`,
    );
  }
  const positionals = [config];
  const overrides = [...values.set, ...bare];
  if (values.backend !== undefined) overrides.push(`backend=${values.backend}`);
  const cfg = await loadConfig(app.config, positionals[0], overrides);
  await checkResultsDir(values.results, { write: !values.explain });
  const progress = new Progress({ quiet: values.quiet });
  const choice = await runtimeOf(app, cfg);
  if (choice.describe) progress.log(choice.describe);
  const opts = {
    cfg,
    stages: app.stages,
    results: values.results,
    runtime: choice.runtime,
    force: values.force,
    until: values.until,
    progress,
    verify: values.verify,
    report: app.report,
  };
  if (values.explain) return await explain(opts, values.results);
  const record = await runPipeline({ ...opts, environment: await environmentOf(choice) });
  const ran = record.stages.filter((s) => s.status === "ran").length;
  progress.log(
    ran === 0
      ? `all ${record.stages.length} stages cached; nothing ran`
      : `${ran} of ${record.stages.length} stages ran in ${record.seconds.toFixed(1)}s`,
  );
  console.log(record.report ?? record.runDir);
  return 0;
}

/** Runs an application's command line with `Deno.args` and exits with its code. */
export async function runCli(app: App): Promise<never> {
  // Ctrl-C: say what survives. Results are only ever renamed into place whole, so stopping
  // anywhere is safe; a long stage resumes from its last checkpoint.
  Deno.addSignalListener("SIGINT", () => {
    if (runInterruptHooks()) return;
    console.error(
      "\ninterrupted: nothing half-written is kept; run the same command again to resume (a long stage continues from its last checkpoint)",
    );
    Deno.exit(130);
  });
  Deno.exit(await main(app, Deno.args));
}
