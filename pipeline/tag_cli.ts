/** `deno task tag RUN [TAG]... [--remove TAG]... [--note TEXT]` (run_tags.ts: the file). */
import { join } from "node:path";
import type { App } from "./app.ts";
import { parseCommand } from "./args.ts";
import { UsageError } from "./errors.ts";
import { findRun } from "./runs_cli.ts";
import { writeFileAtomic } from "./store.ts";
import { markRunChanged } from "./run_index.ts";
import { readTags, tagProblem, TAGS_FILE } from "./run_tags.ts";

const USAGE = `usage: deno task tag RUN [TAG]... [--remove TAG]... [--note TEXT] [--results DIR]
  tags and a note on a run (RUN: a run folder, or a run name or prefix), kept in the run folder
  (tags.json), outside every cache key; shown in runs and the dashboard, where "tag = best"
  filters. With no change, prints the run's tags and note.
  --remove TAG   take a tag off (repeatable)
  --note TEXT    the run's note ("" clears it)`;

/** `deno task tag`; returns the exit code. */
export async function tagCommand(app: App, args: string[]): Promise<number> {
  const parsed = parseCommand<{ remove: string[]; note?: string; results: string }>(
    args,
    USAGE,
    {
      remove: { type: "string", multiple: true, default: [] },
      note: { type: "string" },
      results: { type: "string", default: "results" },
    },
    { positionals: true },
  );
  if (!parsed) return 0;
  const [name, ...add] = parsed.positionals;
  const { remove, note, results } = parsed.values;
  if (!name) throw new UsageError("expected a run", USAGE);
  for (const t of [...add, ...remove]) {
    const problem = tagProblem(t);
    if (problem) throw new UsageError(problem, USAGE);
  }
  const run = await findRun(app, results, name, USAGE);
  const now = await readTags(run.dir);
  if (add.length || remove.length || note !== undefined) {
    const tags = [...new Set([...now.tags, ...add])].filter((t) => !remove.includes(t)).sort();
    const next = { tags, note: note ?? now.note };
    await writeFileAtomic(join(run.dir, TAGS_FILE), JSON.stringify(next, null, 2) + "\n");
    await markRunChanged(run.dir);
    now.tags = next.tags;
    now.note = next.note;
  }
  console.log(
    `${run.run}: ${now.tags.join(", ") || "(no tags)"}${now.note ? `; note: ${now.note}` : ""}`,
  );
  return 0;
}
