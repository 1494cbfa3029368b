/**
 * Seal lines: a file's size and SHA-256, how they are taken and checked, and the file walk
 * both the store's entries and resumable states seal. No imports of the engine's own, so the
 * store and the resumable state can share it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { fileProblem, sealedFileOf } from "./seal.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(join(dir, "f"), "x");
 * const want = await sealedFileOf(join(dir, "f"));
 * assert.equal(await fileProblem(dir, "f", want), null);
 * await Deno.writeTextFile(join(dir, "f"), "y");
 * assert.equal(await fileProblem(dir, "f", want), "f does not match its seal");
 * ```
 */
import { join, relative } from "node:path";
import { sha256File } from "./hash.ts";

/** One sealed file: its size in bytes and SHA-256. */
export interface SealedFile {
  size: number;
  sha256: string;
}

/** Every file under `dir`, as paths relative to it, sorted. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name);
      if (e.isDirectory) await walk(p);
      else out.push(relative(dir, p).split("\\").join("/"));
    }
  };
  await walk(dir);
  return out.sort();
}

/** A file's seal line: its size and SHA-256. */
export async function sealedFileOf(path: string): Promise<SealedFile> {
  return { size: (await Deno.stat(path)).size, sha256: await sha256File(path) };
}

/** What is wrong with file `f` under `dir` against its seal line `want`, or null. */
export async function fileProblem(
  dir: string,
  f: string,
  want: SealedFile,
): Promise<string | null> {
  const p = join(dir, f);
  const st = await Deno.stat(p).catch(() => null);
  if (!st) return `${f} is missing`;
  if (st.size !== want.size || (await sha256File(p)) !== want.sha256) {
    return `${f} does not match its seal`;
  }
  return null;
}
