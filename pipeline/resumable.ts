/**
 * Resumable state of a long stage, kept in its work folder and offered as `ctx.resume`: the
 * stage says what a state holds, this says how it survives. Each state is written whole into a
 * temporary folder, sealed (every file's size and SHA-256, and those of the snapshots taken so
 * far) and swapped in; before a resume the seal is checked, and a damaged state is set aside in
 * one line so the stage starts from the beginning. Snapshots (what an entry keeps of each
 * checkpoint) are written whole or not at all. A finished shorter entry can seed the state,
 * so a longer run continues it.
 *
 * Layout of a work folder: `state/` (with `seal.json`), `snapshots/<name>/`, and folders set
 * aside as `damaged-<time>/`; the runner removes the whole folder once the entry is sealed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 * import { ResumableState } from "./resumable.ts";
 * const lines: string[] = [];
 * const r = new ResumableState(await Deno.makeTempDir(), (l) => lines.push(l));
 * assert.equal(await r.recover(), null);
 * await r.save(5, {
 *   snapshot: "iter_5",
 *   writeSnapshot: (dir) => Deno.mkdir(dir).then(() => Deno.writeTextFile(join(dir, "w"), "s")),
 *   writeState: (dir) => Deno.mkdir(dir).then(() => Deno.writeTextFile(join(dir, "w"), "5")),
 * });
 * assert.equal(await r.recover(), 5);
 * await Deno.writeTextFile(join(r.dir, "w"), "6"); // damage
 * assert.equal(await r.recover(), null);
 * assert.match(lines[0], /resume state at 5 is damaged: w does not match its seal/);
 * ```
 */
import { join } from "node:path";
import { fileProblem, listFiles, type SealedFile, sealedFileOf } from "./seal.ts";
import { recoverSwap, swapIn } from "./swap.ts";

/** What a state's `seal.json` says: its position and the files it and the snapshots hold. */
interface StateSeal {
  position: number;
  /** Paths relative to the state folder (seal.json itself excluded). */
  state: Record<string, SealedFile>;
  /** Paths relative to `snapshots/`. */
  snapshots: Record<string, SealedFile>;
}

const SEAL = "seal.json";

/** Every file under `dir`, relative to it with `/`, sorted (none where `dir` is absent). */
async function filesUnder(dir: string): Promise<string[]> {
  try {
    return await listFiles(dir);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

/** The seal lines of the files under `dir`, with `prefix` before each path. */
async function sealFiles(dir: string, prefix = ""): Promise<Record<string, SealedFile>> {
  const out: Record<string, SealedFile> = {};
  for (const f of await filesUnder(dir)) {
    if (f !== SEAL) out[`${prefix}${f}`] = await sealedFileOf(join(dir, f));
  }
  return out;
}

/** What is wrong with the files under `dir` against `want`, or null. */
async function problemOf(dir: string, want: Record<string, SealedFile>): Promise<string | null> {
  for (const [f, s] of Object.entries(want)) {
    const problem = await fileProblem(dir, f, s);
    if (problem) return problem;
  }
  return null;
}

/**
 * Hard-links every file under `src` into `dst` (copies where links are refused), so `src`
 * keeps its files until whatever holds `dst` is committed.
 */
export async function linkTree(src: string, dst: string): Promise<void> {
  if (!(await Deno.stat(src)).isDirectory) {
    await Deno.link(src, dst).catch(() => Deno.copyFile(src, dst));
    return;
  }
  await Deno.mkdir(dst, { recursive: true });
  for await (const e of Deno.readDir(src)) {
    const [s, d] = [join(src, e.name), join(dst, e.name)];
    if (e.isDirectory) await linkTree(s, d);
    else await Deno.link(s, d).catch(() => Deno.copyFile(s, d));
  }
}

/** How a checkpoint is written: its snapshot (kept for the entry) and the resumable state. */
export interface CheckpointWriter {
  /** The snapshot's folder name under `snapshots/`. */
  snapshot: string;
  /** Writes the snapshot into a folder that does not exist yet. */
  writeSnapshot(dir: string): Promise<void>;
  /** Writes the state into a folder that does not exist yet. */
  writeState(dir: string): Promise<void>;
}

/** How a finished entry seeds the state (see {@link ResumableState.seed}). */
export interface Seeding {
  /** The entry's folder; its `meta.json` seal gives the linked files' hashes. */
  entry: string;
  /** State paths -> the entry's paths (folders or files), hard-linked. */
  links: Record<string, string>;
  /** State files written with this text. */
  texts: Record<string, string>;
  /** Snapshot name -> the entry's folder of it. */
  snapshots: Record<string, string>;
}

/** The resumable state of one stage's work folder. */
export class ResumableState {
  #seal: StateSeal | null = null;

  /** `log` says one line when a damaged state is set aside. */
  constructor(readonly workDir: string, readonly log: (line: string) => void = () => {}) {}

  /** The state folder a resume reads (after {@link ResumableState.recover} gave a position). */
  get dir(): string {
    return join(this.workDir, "state");
  }

  /** The folder of every snapshot. */
  get snapshotsDir(): string {
    return join(this.workDir, "snapshots");
  }

  /**
   * Finishes or undoes what a crash left (a half swap, temporary folders), then checks the
   * state against its seal. Returns its position, or null with no state to resume: none yet,
   * or a damaged one, set aside and named in one line.
   */
  async recover(): Promise<number | null> {
    this.#seal = null;
    await Deno.mkdir(this.workDir, { recursive: true });
    await recoverSwap(this.dir);
    for await (const e of Deno.readDir(this.workDir)) {
      if (e.name.startsWith("state.tmp-")) {
        await Deno.remove(join(this.workDir, e.name), { recursive: true }).catch(() => {});
      }
    }
    await Deno.mkdir(this.snapshotsDir, { recursive: true });
    for await (const e of Deno.readDir(this.snapshotsDir)) {
      if (e.name.includes(".tmp-")) {
        await Deno.remove(join(this.snapshotsDir, e.name), { recursive: true });
      }
    }
    const { seal, problem } = await this.inspect();
    if (problem) {
      await this.#setAside(seal ? `resume state at ${seal.position}` : "the state", problem);
      return null;
    }
    if (!seal) return null;
    // a snapshot the seal does not hold was taken past the state's position: it is redone
    const held = new Set(Object.keys(seal.snapshots).map((f) => f.split("/")[0]));
    for await (const e of Deno.readDir(this.snapshotsDir)) {
      if (!held.has(e.name)) {
        await Deno.remove(join(this.snapshotsDir, e.name), { recursive: true });
      }
    }
    this.#seal = seal;
    return seal.position;
  }

  /**
   * The state's seal and what is wrong with it, changing nothing: no state gives neither; a
   * state whose seal or files do not check gives the problem (`verify` reports it; a resume
   * sets the state aside).
   */
  async inspect(): Promise<{ seal: StateSeal | null; problem: string | null }> {
    if (!(await Deno.stat(this.dir).then(() => true, () => false))) {
      return { seal: null, problem: null };
    }
    let seal: StateSeal;
    try {
      seal = JSON.parse(await Deno.readTextFile(join(this.dir, SEAL)));
      if (typeof seal.position !== "number" || !seal.state || !seal.snapshots) throw new Error();
    } catch {
      return { seal: null, problem: "its seal is missing or unreadable" };
    }
    const problem = await problemOf(this.dir, seal.state) ??
      await problemOf(this.snapshotsDir, seal.snapshots);
    return { seal, problem };
  }

  /**
   * Writes a checkpoint at `position`: its snapshot whole or not at all, then a new sealed
   * state swapped in. A crash anywhere leaves a state whose snapshots are all complete; a
   * failure (a full disk) leaves no temporary folder behind.
   */
  async save(position: number, w: CheckpointWriter): Promise<void> {
    const snap = join(this.snapshotsDir, w.snapshot);
    const snapTmp = `${snap}.tmp-${Deno.pid}`;
    const tmp = join(this.workDir, `state.tmp-${Deno.pid}`);
    let seal: StateSeal;
    try {
      await Deno.remove(snapTmp, { recursive: true }).catch(() => {});
      await Deno.mkdir(this.snapshotsDir, { recursive: true });
      await w.writeSnapshot(snapTmp);
      await Deno.remove(snap, { recursive: true }).catch(() => {});
      await Deno.rename(snapTmp, snap);
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
      await w.writeState(tmp);
      const earlier = Object.entries(this.#seal?.snapshots ?? {})
        .filter(([f]) => f.split("/")[0] !== w.snapshot);
      seal = {
        position,
        state: await sealFiles(tmp),
        snapshots: {
          ...Object.fromEntries(earlier),
          ...await sealFiles(snap, `${w.snapshot}/`),
        },
      };
      await Deno.writeTextFile(join(tmp, SEAL), JSON.stringify(seal));
    } catch (e) {
      await Deno.remove(snapTmp, { recursive: true }).catch(() => {});
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
      throw e;
    }
    await swapIn(tmp, this.dir);
    this.#seal = seal;
  }

  /**
   * Makes a finished entry (already verified against its seal) the state at `position`: its
   * files hard-linked, never copied, with their hashes taken from the entry's seal.
   */
  async seed(position: number, s: Seeding): Promise<void> {
    const sealed: Record<string, SealedFile> =
      JSON.parse(await Deno.readTextFile(join(s.entry, "meta.json"))).seal.files;
    const hashesOf = async (from: string, prefix: string) => {
      if (!(await Deno.stat(join(s.entry, from))).isDirectory) return { [prefix]: sealed[from] };
      const out: Record<string, SealedFile> = {};
      for (const f of await filesUnder(join(s.entry, from))) {
        out[`${prefix}/${f}`] = sealed[`${from}/${f}`];
      }
      return out;
    };
    const snapshots: Record<string, SealedFile> = {};
    for (const [name, from] of Object.entries(s.snapshots)) {
      await linkTree(join(s.entry, from), join(this.snapshotsDir, name));
      Object.assign(snapshots, await hashesOf(from, name));
    }
    const tmp = join(this.workDir, `state.tmp-${Deno.pid}`);
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    const state: Record<string, SealedFile> = {};
    await Deno.mkdir(tmp, { recursive: true });
    for (const [to, from] of Object.entries(s.links)) {
      await linkTree(join(s.entry, from), join(tmp, to));
      Object.assign(state, await hashesOf(from, to));
    }
    for (const [to, text] of Object.entries(s.texts)) {
      const p = join(tmp, to);
      await Deno.writeTextFile(p, text);
      state[to] = await sealedFileOf(p);
    }
    if (Object.values({ ...state, ...snapshots }).some((v) => v === undefined)) {
      throw new Error(`the entry ${s.entry} has files its seal does not name`);
    }
    const seal = { position, state, snapshots };
    await Deno.writeTextFile(join(tmp, SEAL), JSON.stringify(seal));
    await swapIn(tmp, this.dir);
    this.#seal = seal;
  }

  /** Links every snapshot into `dst` (the work folder keeps them until the entry is sealed). */
  async linkSnapshots(dst: string): Promise<void> {
    await Deno.mkdir(this.snapshotsDir, { recursive: true });
    await linkTree(this.snapshotsDir, dst);
  }

  /** Moves the state and its snapshots aside, saying so in one line. */
  async #setAside(what: string, problem: string): Promise<void> {
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    const dest = join(this.workDir, `damaged-${stamp}`);
    await Deno.mkdir(dest, { recursive: true });
    await Deno.rename(this.dir, join(dest, "state"));
    await Deno.rename(this.snapshotsDir, join(dest, "snapshots")).catch(() => {});
    this.log(`${what} is damaged: ${problem}; set aside in ${dest}; starting from the beginning`);
  }
}
