/**
 * Tags and a note on a run, as W&B and MLflow keep them: `deno task tag RUN best baseline
 * --note "..."`. They live in the run folder's `tags.json`, outside every cache key (a run
 * folder is an output), and show in `runs` and the dashboard, where `tag = best` filters.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tagProblem } from "./run_tags.ts";
 * assert.equal(tagProblem("best"), null);
 * assert.match(tagProblem("two words")!, /letters, digits/);
 * ```
 */
import { join } from "node:path";

/** A run's tags and note. */
export interface RunTags {
  tags: string[];
  note: string;
}

/** The file in a run folder. */
export const TAGS_FILE = "tags.json";

/** What is wrong with a tag (null: nothing). */
export function tagProblem(tag: string): string | null {
  return /^[A-Za-z0-9][A-Za-z0-9._:+-]{0,63}$/.test(tag)
    ? null
    : `"${tag}": a tag is letters, digits and . _ : + - (at most 64, no spaces)`;
}

/** A run folder's tags (none when it has no file; a damaged file counts as none, said once). */
export async function readTags(
  runDir: string,
  onBad?: (file: string, problem: string) => void,
): Promise<RunTags> {
  const file = join(runDir, TAGS_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch {
    return { tags: [], note: "" };
  }
  try {
    const v = JSON.parse(text);
    if (
      Array.isArray(v?.tags) && v.tags.every((t: unknown) => typeof t === "string") &&
      typeof (v.note ?? "") === "string"
    ) return { tags: v.tags, note: v.note ?? "" };
    onBad?.(file, "not a tags record");
  } catch {
    onBad?.(file, "not valid JSON");
  }
  return { tags: [], note: "" };
}
