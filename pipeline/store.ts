/**
 * The content-addressed cache: `<results>/cache/<stage>/<key>/` holds a stage's artifacts
 * and `meta.json`. A stage writes into a temporary folder beside the target; the folder is
 * renamed into place only after everything is written, meta.json last, so a crash leaves
 * nothing a later run trusts.
 *
 * meta.json is the entry's seal: it lists every file with its size and SHA-256, the key and
 * the host that wrote it. An entry counts only when its seal is valid and its files match
 * it: sizes are checked on every use, hashes on request (`--verify`, `deno task verify`) and
 * always for entries another host wrote (a cluster's shared disk). A damaged entry is moved
 * to `cache/.damaged/` for inspection and rebuilt.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Store } from "./store.ts";
 * const store = new Store(await Deno.makeTempDir());
 * const key = "ab".repeat(32);
 * const tmp = await store.begin("demo", key);
 * await Deno.writeTextFile(`${tmp}/x.txt`, "1");
 * const code = { files: {}, packages: {} };
 * const inputs = { stage: "demo", config: {}, code, upstream: {}, runtime: null, fingerprint: null };
 * await store.commit("demo", key, tmp, { stage: "demo", key, inputs, seconds: 0, created: "now" });
 * assert(await store.has("demo", key));
 * await Deno.truncate(`${store.dir("demo", key)}/x.txt`, 0);
 * assert((await store.check("demo", key)).state === "damaged");
 * ```
 */
import { join, relative, sep } from "node:path";
import { UsageError } from "./errors.ts";
import { hashValue, sha256File } from "./hash.ts";
import { fileProblem, listFiles, type SealedFile, sealedFileOf } from "./seal.ts";
import { swapIn } from "./swap.ts";

export { fileProblem, listFiles, type SealedFile, sealedFileOf };
import type { KeyInputs } from "./stage.ts";

/** The seal of an entry: every file it holds (paths relative to the entry, `/`-separated). */
export interface Seal {
  files: Record<string, SealedFile>;
  host: string;
}

/** What meta.json holds. */
export interface EntryMeta {
  stage: string;
  key: string;
  inputs: KeyInputs;
  /** Upstream stage -> the key of the entry it was built from (provenance, not part of the key). */
  upstreamKeys?: Record<string, string>;
  seconds: number;
  created: string;
  summary?: Record<string, unknown>;
  /** Written by {@link Store.commit}; an entry without one is not an entry. */
  seal?: Seal;
}

/** The outcome of checking an entry. */
export type EntryCheck =
  | { state: "ok"; meta: EntryMeta }
  | { state: "absent" }
  | { state: "damaged"; problem: string };

/** This machine's name, for seals (entries from another host are hashed on use). */
export function hostName(): string {
  try {
    return Deno.hostname();
  } catch {
    return "unknown";
  }
}

/** The seal of the files in `dir` (meta.json itself excluded). */
export async function sealOf(dir: string): Promise<Seal> {
  const files: Record<string, SealedFile> = {};
  for (const f of await listFiles(dir)) {
    if (f !== "meta.json") files[f] = await sealedFileOf(join(dir, f));
  }
  return { files, host: hostName() };
}

/**
 * The digest of an entry's outputs as downstream keys name it: its sealed files' hashes,
 * less the `exclude`d ones (timings).
 */
export function outputDigest(seal: Seal, exclude: readonly string[] = []): string {
  const files = Object.entries(seal.files).filter(([f]) => !exclude.includes(f))
    .map(([f, s]) => [f, s.sha256]);
  return hashValue(Object.fromEntries(files));
}

/** The folder of a stage's entry in a cache folder (`<results>/cache`). */
export function entryDir(cacheRoot: string, stage: string, key: string): string {
  return join(cacheRoot, stage, key);
}

/**
 * What is wrong with the files under `sub` (a folder or file of a sealed entry) against the
 * entry's seal, or null: for a reader that uses part of an entry (a model) without hashing it
 * all. Every file there must be sealed and match its SHA-256.
 */
export async function sealedProblem(entry: string, sub: string): Promise<string | null> {
  let files: Record<string, SealedFile>;
  try {
    files = JSON.parse(await Deno.readTextFile(join(entry, "meta.json"))).seal.files;
    if (!files || typeof files !== "object") throw new Error();
  } catch {
    return "meta.json is missing, unreadable or has no seal";
  }
  const root = join(entry, sub);
  const st = await Deno.stat(root).catch(() => null);
  if (!st) return `${sub} is missing`;
  const under = st.isDirectory ? (await listFiles(root)).map((f) => `${sub}/${f}`) : [sub];
  for (const f of under) {
    if (!files[f]) return `${f} is not part of the sealed entry`;
    const problem = await fileProblem(entry, f, files[f]);
    if (problem) return problem;
  }
  return null;
}

/**
 * What is wrong with `file` if it lies in a sealed cache entry under `results` (links
 * resolved), or null (it is sound, or in no entry): one line naming the entry and the fix.
 */
export async function damagedFile(results: string, file: string): Promise<string | null> {
  let real: string, root: string;
  try {
    [real, root] = [await Deno.realPath(file), await Deno.realPath(join(results, "cache"))];
  } catch {
    return null;
  }
  const parts = relative(root, real).split(sep);
  if (parts[0] === ".." || parts.length < 3 || parts[1].startsWith(".")) return null;
  const [stage, key, ...rest] = parts;
  const problem = await sealedProblem(join(root, stage, key), rest.join("/"));
  return problem
    ? `damaged cache entry ${stage}/${
      key.slice(0, 12)
    }: ${problem}; rebuild it with: deno task run <its config> --verify`
    : null;
}

/** The on-disk cache under a results folder. */
export class Store {
  readonly root: string;
  constructor(readonly results: string) {
    this.root = join(results, "cache");
  }

  /** The final folder of an entry. */
  dir(stage: string, key: string): string {
    return entryDir(this.root, stage, key);
  }

  /** A stage's persistent work folder (checkpoints) for a key. */
  workDir(stage: string, key: string): string {
    return join(this.root, stage, `.work-${key}`);
  }

  /**
   * Whether a complete, undamaged entry exists (sizes checked, and with `hash` every file's
   * SHA-256; see {@link Store.check}).
   */
  async has(stage: string, key: string, { hash = false } = {}): Promise<boolean> {
    return (await this.check(stage, key, { hash })).state === "ok";
  }

  /**
   * Checks an entry against its seal: the seal parses and names this stage and key, every
   * sealed file is there with its size, and there is no other file. With `hash` (or for an
   * entry another host sealed) the SHA-256 of every file is compared too.
   */
  async check(stage: string, key: string, { hash = false } = {}): Promise<EntryCheck> {
    const dir = this.dir(stage, key);
    try {
      await Deno.stat(dir);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return { state: "absent" };
      throw e;
    }
    const damaged = (problem: string): EntryCheck => ({ state: "damaged", problem });
    let meta: EntryMeta;
    try {
      meta = JSON.parse(await Deno.readTextFile(join(dir, "meta.json")));
    } catch (e) {
      return damaged(
        e instanceof Deno.errors.NotFound ? "meta.json is missing" : "meta.json is not valid JSON",
      );
    }
    const seal = meta?.seal;
    if (!seal || typeof seal.files !== "object" || seal.files === null) {
      return damaged("meta.json has no seal (written by an older version, or edited)");
    }
    if (meta.stage !== stage || meta.key !== key) {
      return damaged(`meta.json is the seal of ${meta.stage}/${String(meta.key).slice(0, 12)}`);
    }
    const present = new Set(await listFiles(dir));
    present.delete("meta.json");
    const verifyHashes = hash || seal.host !== hostName();
    for (const [f, want] of Object.entries(seal.files)) {
      if (!present.delete(f)) return damaged(`${f} is missing`);
      const p = join(dir, f);
      const size = (await Deno.stat(p)).size;
      if (size !== want.size) return damaged(`${f} is ${size} bytes, sealed as ${want.size}`);
      if (verifyHashes && (await sha256File(p)) !== want.sha256) {
        return damaged(`${f} does not match its sealed SHA-256`);
      }
    }
    if (present.size) return damaged(`${[...present][0]} is not part of the sealed entry`);
    return { state: "ok", meta };
  }

  /**
   * Moves a damaged entry to `cache/.damaged/<stage>/<key>-<time>/` (kept for inspection,
   * with the problem in `problem.txt`); returns where it went.
   */
  async quarantine(stage: string, key: string, problem: string): Promise<string> {
    const parent = join(this.root, ".damaged", stage);
    await Deno.mkdir(parent, { recursive: true });
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    const dest = join(parent, `${key}-${stamp}-${Deno.pid}`);
    await Deno.rename(this.dir(stage, key), dest);
    await Deno.writeTextFile(join(dest, "problem.txt"), problem + "\n").catch(() => {});
    return dest;
  }

  /** Reads an entry's meta.json, or null. */
  async meta(stage: string, key: string): Promise<EntryMeta | null> {
    try {
      return JSON.parse(await Deno.readTextFile(join(this.dir(stage, key), "meta.json")));
    } catch {
      return null;
    }
  }

  /** The stages that have a folder in the cache. */
  async stages(): Promise<string[]> {
    const out: string[] = [];
    try {
      for await (const e of Deno.readDir(this.root)) {
        if (e.isDirectory && !e.name.startsWith(".")) out.push(e.name);
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return out.sort();
  }

  /** The keys of a stage that have a work folder (an interrupted run's resumable state). */
  async workKeys(stage: string): Promise<string[]> {
    const out: string[] = [];
    try {
      for await (const e of Deno.readDir(join(this.root, stage))) {
        if (e.isDirectory && e.name.startsWith(".work-")) out.push(e.name.slice(".work-".length));
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return out.sort();
  }

  /** The keys with a folder under a stage (sealed or not). */
  async keys(stage: string): Promise<string[]> {
    const out: string[] = [];
    try {
      for await (const e of Deno.readDir(join(this.root, stage))) {
        if (e.isDirectory && !e.name.startsWith(".") && /^[0-9a-f]{64}$/.test(e.name)) {
          out.push(e.name);
        }
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return out.sort();
  }

  /**
   * Every entry of a stage whose meta.json reads, newest first; its files are not checked
   * here ({@link Store.check} does that).
   */
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

  /** Whether the entry's folder exists at all (sealed or not). */
  async exists(stage: string, key: string): Promise<boolean> {
    try {
      await Deno.stat(this.dir(stage, key));
      return true;
    } catch {
      return false;
    }
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

  /**
   * Seals the temporary folder (meta.json, written last), then renames it into place;
   * returns the sealed meta.
   */
  async commit(stage: string, key: string, tmp: string, meta: EntryMeta): Promise<EntryMeta> {
    const sealed: EntryMeta = { ...meta, seal: await sealOf(tmp) };
    await writeFileAtomic(join(tmp, "meta.json"), JSON.stringify(sealed, null, 2) + "\n");
    // another process may have committed the same key first (or a forced re-run): keep one copy
    await swapIn(tmp, this.dir(stage, key));
    return sealed;
  }

  /**
   * Takes the lock of an entry so that one process computes it while others wait. Returns a
   * release function, or null when the entry exists (computed meanwhile by another process:
   * use the cache). With `hash`, an entry counts as existing only when its files match their
   * sealed hashes, so `run --verify` rebuilds a damaged one rather than using it. The lock is an OS file lock, so a process that dies releases it; the
   * unfinished temporary folders it left for this key are cleared by the next holder.
   */
  async lock(
    stage: string,
    key: string,
    { onWait, force = false, hash = false }: {
      onWait?: () => void;
      force?: boolean;
      hash?: boolean;
    } = {},
  ): Promise<(() => Promise<void>) | null> {
    const parent = join(this.root, stage);
    await Deno.mkdir(parent, { recursive: true });
    if (!force && await this.has(stage, key, { hash })) return null;
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
    if (!force && await this.has(stage, key, { hash })) {
      await release();
      return null;
    }
    await this.#clearStale(parent, key);
    return release;
  }

  /**
   * Marks a cached entry as in use by this process (a shared lock on its lock file) until the
   * returned function is called, so `gc` leaves it alone. Never waits: where a writer holds
   * the lock (a forced rebuild), nothing is held.
   */
  async hold(stage: string, key: string): Promise<() => void> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(join(this.root, stage, `.lock-${key}`), { create: true, write: true });
    } catch {
      return () => {};
    }
    if (!(await file.tryLock(false))) {
      file.close();
      return () => {};
    }
    return () => file.close(); // closing releases the lock
  }

  /**
   * Takes an entry's lock only if no other process holds it in any way (no writer, no run
   * using it); returns the release function, or null.
   */
  async tryExclusive(stage: string, key: string): Promise<(() => void) | null> {
    const file = await Deno.open(join(this.root, stage, `.lock-${key}`), {
      create: true,
      write: true,
    });
    if (!(await file.tryLock(true))) {
      file.close();
      return null;
    }
    return () => file.close();
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

/**
 * Makes sure a results folder can be used: not a file, there (with `mustExist`), and (with
 * `write`) creatable and writable. Throws a {@link UsageError} that names the folder and the fix.
 */
export async function checkResultsDir(
  dir: string,
  { write = true, mustExist = false, usage }: {
    write?: boolean;
    mustExist?: boolean;
    /** The command's usage, shown with the error (its own, not `run`'s). */
    usage?: string;
  } = {},
): Promise<void> {
  try {
    const st = await Deno.stat(dir);
    if (!st.isDirectory) {
      throw new UsageError(`--results ${dir} is a file, not a folder; give a folder path`, usage);
    }
  } catch (e) {
    if (e instanceof UsageError) throw e;
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new UsageError(`--results ${dir} cannot be read (${(e as Error).message})`, usage);
    }
    if (mustExist) {
      throw new UsageError(
        `--results ${dir} does not exist; give the results folder the runs were made in`,
        usage,
      );
    }
  }
  if (!write) return;
  const probe = join(dir, `.write-test-${Deno.pid}`);
  try {
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(probe, "");
    await Deno.remove(probe);
  } catch (e) {
    await Deno.remove(probe).catch(() => {});
    throw new UsageError(
      `--results ${dir} is not writable (${
        (e as Error).message.split(":")[0]
      }); choose a writable folder with --results`,
      usage,
    );
  }
}

/** Writes a file through a temporary name and a rename, so readers never see half of it. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const rand = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
  const tmp = `${path}.${Deno.pid}-${rand}.tmp`;
  try {
    if (typeof data === "string") await Deno.writeTextFile(tmp, data);
    else await Deno.writeFile(tmp, data);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {}); // a full disk leaves no 0-byte leftovers
    throw e;
  }
}
