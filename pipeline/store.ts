/**
 * The content-addressed cache: `<results>/cache/<stage>/<key>/` holds a stage's artifacts
 * and `meta.json`. A stage writes into a temporary folder beside the target; the folder is
 * renamed into place only after everything (meta.json last) is written, so a crash leaves
 * nothing a later run trusts. An entry counts only when its meta.json exists.
 *
 * @example
 * ```ts
 * import { Store } from "./store.ts";
 * const store = new Store(await Deno.makeTempDir());
 * const tmp = await store.begin("demo", "abc");
 * await Deno.writeTextFile(`${tmp}/x.txt`, "1");
 * await store.commit("demo", "abc", tmp, { created: "now" });
 * console.assert(await store.has("demo", "abc"));
 * ```
 */
import { join } from "node:path";

/** What meta.json holds. */
export interface EntryMeta {
  stage: string;
  key: string;
  inputs: KeyInputs;
  seconds: number;
  created: string;
  summary?: Record<string, unknown>;
}

/** Everything that goes into a stage's key. */
export interface KeyInputs {
  stage: string;
  version: number;
  config: unknown;
  upstream: Record<string, string>;
  runtime: unknown;
  fingerprint: unknown;
}

/** The on-disk cache under a results folder. */
export class Store {
  readonly root: string;
  constructor(readonly results: string) {
    this.root = join(results, "cache");
  }

  /** The final folder of an entry. */
  dir(stage: string, key: string): string {
    return join(this.root, stage, key);
  }

  /** A stage's persistent work folder (checkpoints) for a key. */
  workDir(stage: string, key: string): string {
    return join(this.root, stage, `.work-${key}`);
  }

  /** Whether a complete entry exists. */
  async has(stage: string, key: string): Promise<boolean> {
    try {
      await Deno.stat(join(this.dir(stage, key), "meta.json"));
      return true;
    } catch {
      return false;
    }
  }

  /** Reads an entry's meta.json, or null. */
  async meta(stage: string, key: string): Promise<EntryMeta | null> {
    try {
      return JSON.parse(await Deno.readTextFile(join(this.dir(stage, key), "meta.json")));
    } catch {
      return null;
    }
  }

  /** All complete entries of a stage, newest first. */
  async entries(stage: string): Promise<EntryMeta[]> {
    const out: EntryMeta[] = [];
    try {
      for await (const e of Deno.readDir(join(this.root, stage))) {
        if (!e.isDirectory || e.name.startsWith(".")) continue;
        const m = await this.meta(stage, e.name);
        if (m) out.push(m);
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return out.sort((a, b) => b.created.localeCompare(a.created));
  }

  /** Creates a fresh temporary folder for building an entry (call while holding its lock). */
  async begin(stage: string, key: string): Promise<string> {
    const parent = join(this.root, stage);
    await Deno.mkdir(parent, { recursive: true });
    const rand = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
    const tmp = join(parent, `.tmp-${key.slice(0, 16)}-${Deno.pid}-${rand}`);
    await Deno.mkdir(tmp);
    return tmp;
  }

  /** Writes meta.json into the temporary folder, then renames it into place. */
  async commit(stage: string, key: string, tmp: string, meta: unknown): Promise<void> {
    await writeFileAtomic(join(tmp, "meta.json"), JSON.stringify(meta, null, 2) + "\n");
    const final = this.dir(stage, key);
    try {
      await Deno.rename(tmp, final);
    } catch (e) {
      // Another process committed the same key first (or a forced re-run): keep one copy.
      if (await this.has(stage, key)) {
        const old = `${final}.old-${Deno.pid}`;
        await Deno.rename(final, old);
        await Deno.rename(tmp, final);
        await Deno.remove(old, { recursive: true });
      } else throw e;
    }
  }

  /**
   * Takes the lock of an entry so that one process computes it while others wait. Returns a
   * release function, or null when the entry exists (computed meanwhile by another process:
   * use the cache). The lock is an OS file lock, so a process that dies releases it; the
   * unfinished temporary folders it left for this key are cleared by the next holder.
   */
  async lock(
    stage: string,
    key: string,
    { onWait, force = false }: { onWait?: () => void; force?: boolean } = {},
  ): Promise<(() => Promise<void>) | null> {
    const parent = join(this.root, stage);
    await Deno.mkdir(parent, { recursive: true });
    if (!force && await this.has(stage, key)) return null;
    // The lock file stays: deleting it would let a waiter hold a lock on a file nobody sees.
    const file = await Deno.open(join(parent, `.lock-${key}`), { create: true, write: true });
    if (!(await file.tryLock(true))) {
      onWait?.();
      await file.lock(true);
    }
    const release = async () => {
      await file.unlock().catch(() => {});
      file.close();
    };
    if (!force && await this.has(stage, key)) {
      await release();
      return null;
    }
    await this.#clearStale(parent, key);
    return release;
  }

  /** Removes what a dead holder of this key's lock left: temporary and swapped-out folders. */
  async #clearStale(parent: string, key: string): Promise<void> {
    for await (const e of Deno.readDir(parent)) {
      if (e.name.startsWith(`.tmp-${key.slice(0, 16)}-`) || e.name.startsWith(`${key}.old-`)) {
        await Deno.remove(join(parent, e.name), { recursive: true }).catch(() => {});
      }
    }
  }

  /** Removes a temporary folder after a failure. */
  async abandon(tmp: string): Promise<void> {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

/** Writes a file through a temporary name and a rename, so readers never see half of it. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const rand = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
  const tmp = `${path}.${Deno.pid}-${rand}.tmp`;
  if (typeof data === "string") await Deno.writeTextFile(tmp, data);
  else await Deno.writeFile(tmp, data);
  await Deno.rename(tmp, path);
}
