/**
 * `deno task verify [--results DIR]`: checks every cache entry against its seal, hashes
 * included, and says which are damaged (exit 1 if any). Damaged entries are left where they
 * are: the next run that needs one sets it aside and rebuilds it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { verifyCache } from "./verify_cli.ts";
 * const r = await verifyCache(await Deno.makeTempDir());
 * assert(r.checked === 0 && r.damaged.length === 0);
 * ```
 */
import { parseCommand } from "./args.ts";
import { ResumableState } from "./resumable.ts";
import { checkResultsDir, Store } from "./store.ts";

/** What {@link verifyCache} found: entries, and interrupted runs' resume states. */
export interface VerifyReport {
  checked: number;
  damaged: { stage: string; key: string; problem: string; resume?: boolean }[];
}

/** Checks every entry of the cache under `results`, hashes included. */
export async function verifyCache(
  results: string,
  onEntry?: (stage: string, key: string, problem: string | null) => void,
): Promise<VerifyReport> {
  const store = new Store(results);
  const report: VerifyReport = { checked: 0, damaged: [] };
  for (const stage of await store.stages()) {
    for (const key of await store.keys(stage)) {
      const c = await store.check(stage, key, { hash: true });
      report.checked++;
      const problem = c.state === "damaged" ? c.problem : null;
      if (problem) report.damaged.push({ stage, key, problem });
      onEntry?.(stage, key, problem);
    }
    // an interrupted run's resume state: sealed as it was written, checked the same way
    for (const key of await store.workKeys(stage)) {
      const { seal, problem } = await new ResumableState(store.workDir(stage, key)).inspect();
      if (!seal && !problem) continue;
      report.checked++;
      if (problem) report.damaged.push({ stage, key, problem, resume: true });
      onEntry?.(`${stage} (resume state)`, key, problem);
    }
  }
  return report;
}

const USAGE = `usage: deno task verify [--results DIR] [--quiet]
  checks every cache entry's files, and every interrupted run's resume state, against its seal
  (sizes and SHA-256); exit 1 if any is damaged`;

/** The `verify` command; returns the exit code. */
export async function verifyCommand(args: string[]): Promise<number> {
  const parsed = parseCommand<{ results: string; quiet: boolean }>(args, USAGE, {
    results: { type: "string", default: "results" },
    quiet: { type: "boolean", default: false },
  });
  if (!parsed) return 0;
  const { values } = parsed;
  await checkResultsDir(values.results, { write: false, mustExist: true, usage: USAGE });
  const r = await verifyCache(values.results, (stage, key, problem) => {
    if (problem) console.log(`DAMAGED ${stage}/${key.slice(0, 12)}: ${problem}`);
    else if (!values.quiet) console.log(`ok      ${stage}/${key.slice(0, 12)}`);
  });
  console.log(
    `${r.checked} entries checked, ${r.damaged.length} damaged${
      r.damaged.length
        ? "; `run --verify` sets each one its config uses aside and rebuilds it (any run does so for an entry a stage is about to compute from; a damaged resume state is set aside by the next run of its config, which starts that stage over)"
        : ""
    }`,
  );
  return r.damaged.length ? 1 : 0;
}
