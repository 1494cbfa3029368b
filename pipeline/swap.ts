/**
 * Folder swaps: a new folder takes an old one's place, and at every moment one whole folder
 * is there to trust (or, mid-swap, its `.old-<pid>` twin). The store commits entries with it
 * and resumable state swaps in new states with it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { swapIn } from "./swap.ts";
 * const dir = await Deno.makeTempDir();
 * for (const v of ["1", "2"]) {
 *   await Deno.mkdir(join(dir, "new"));
 *   await Deno.writeTextFile(join(dir, "new", "v"), v);
 *   await swapIn(join(dir, "new"), join(dir, "state"));
 * }
 * assert.equal(await Deno.readTextFile(join(dir, "state", "v")), "2");
 * ```
 */
import { basename, dirname, join } from "node:path";

/** The name a folder is moved to while its replacement moves in. */
function oldName(final: string, pid = Deno.pid): string {
  return `${final}.old-${pid}`;
}

/**
 * Puts the folder `tmp` at `final`. An existing `final` is moved aside first and removed only
 * once the new one is in place, so a crash leaves either of them whole.
 */
export async function swapIn(tmp: string, final: string): Promise<void> {
  const old = oldName(final);
  let moved = false;
  try {
    await Deno.rename(final, old);
    moved = true;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  try {
    await Deno.rename(tmp, final);
  } catch (e) {
    if (moved) await Deno.rename(old, final).catch(() => {});
    throw e;
  }
  if (moved) await Deno.remove(old, { recursive: true });
}

/**
 * Finishes what a crash in {@link swapIn} left: where `final` never arrived its old twin
 * moves back; old twins beside a `final` are removed.
 */
export async function recoverSwap(final: string): Promise<void> {
  const prefix = `${basename(final)}.old-`;
  const parent = dirname(final);
  let entries: Deno.DirEntry[] = [];
  try {
    entries = await Array.fromAsync(Deno.readDir(parent));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  for (const e of entries.filter((e) => e.name.startsWith(prefix))) {
    const old = join(parent, e.name);
    const there = await Deno.stat(final).then(() => true, () => false);
    if (there) await Deno.remove(old, { recursive: true }).catch(() => {});
    else await Deno.rename(old, final);
  }
}
