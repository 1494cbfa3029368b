/**
 * The run index: each run folder's row, kept in `results/index.sqlite` (SQLite through Deno's
 * built-in `node:sqlite`) so that listing 100k runs does not read 100k `run.json` files. The
 * folders stay the truth and the index is derived: delete it and the next listing rebuilds it.
 *
 * How it stays right without a stat per folder:
 * - every writer of a run folder (the runner's live status and record, `tag`) first leaves a
 *   marker `results/index.dirty/<run>`; a listing re-reads the marked folders, then removes the
 *   markers it read (a marker a writer leaves meanwhile is newer than the read, so it stays);
 * - a folder the index does not know is read; a row whose folder is gone is dropped;
 * - a row read while its run was in flight is read again at every listing until it is not.
 *
 * So what can go stale is a folder changed by hand (or by a version without markers): `deno
 * task runs --reindex` rebuilds the index from the folders.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RunIndex } from "./run_index.ts";
 * const results = await Deno.makeTempDir();
 * await Deno.mkdir(`${results}/runs/a`, { recursive: true });
 * const reads: string[] = [];
 * const read = (name: string) => (reads.push(name), Promise.resolve({ row: { name }, volatile: false }));
 * const index = RunIndex.open(results)!;
 * assert.deepEqual(await index.rows(read), [{ name: "a" }]);
 * assert.deepEqual(await index.rows(read), [{ name: "a" }]); // from the index
 * assert.deepEqual(reads, ["a"]);
 * index.close();
 * ```
 */
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";

/** The index file under a results folder. */
export const INDEX_FILE = "index.sqlite";
/** The folder of markers naming run folders changed since the index read them. */
export const DIRTY_DIR = "index.dirty";

/** Bumped when a row's shape changes: an index of another version is rebuilt. */
const VERSION = 2;

/**
 * Says that the run folder `runDir` (`results/runs/<run>`) changed, so the index reads it
 * again. Never fails the writer: a marker that cannot be written leaves the index stale until
 * `runs --reindex`, not the run broken.
 */
export async function markRunChanged(runDir: string): Promise<void> {
  const name = runDir.split(/[\\/]/).filter(Boolean).at(-1)!;
  const dirty = join(runDir, "..", "..", DIRTY_DIR);
  try {
    await Deno.mkdir(dirty, { recursive: true });
    await Deno.writeFile(join(dirty, name), new Uint8Array());
  } catch {
    // the index is a view
  }
}

/** How rows are stored: as text, and back (a codec may share what rows have in common). */
export interface RowCodec<R> {
  encode(row: R): string;
  decode(text: string): R;
}

/** Rows as plain JSON. */
export function jsonCodec<R>(): RowCodec<R> {
  return { encode: (r) => JSON.stringify(r), decode: (t) => JSON.parse(t) as R };
}

/** One folder's row as its reader makes it; `volatile`: read it again at every listing. */
export interface IndexedRead<R> {
  row: R | null;
  volatile: boolean;
}

/** The folder names under `dir` (none when it is missing). */
function folders(dir: string): string[] {
  try {
    const out: string[] = [];
    for (const e of Deno.readDirSync(dir)) if (e.isDirectory) out.push(e.name);
    return out;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

function files(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].filter((e) => e.isFile).map((e) => e.name);
  } catch {
    return [];
  }
}

/** A results folder's run index. */
export class RunIndex {
  readonly #db: DatabaseSync;
  readonly #results: string;

  private constructor(db: DatabaseSync, results: string) {
    this.#db = db;
    this.#results = results;
  }

  /**
   * The index of `results`, made or rebuilt as needed; null where it cannot be had (no write
   * permission, a read-only folder): the caller then reads every folder, as before the index.
   */
  static open(results: string): RunIndex | null {
    const path = join(results, INDEX_FILE);
    for (let attempt = 0; attempt < 2; attempt++) {
      let db: DatabaseSync | null = null;
      try {
        db = new DatabaseSync(path, { timeout: 5000 });
        db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
        const version = (db.prepare("PRAGMA user_version").get() as { user_version: number })
          .user_version;
        if (version !== VERSION) {
          db.exec(`BEGIN IMMEDIATE;
            DROP TABLE IF EXISTS runs;
            DROP TABLE IF EXISTS meta;
            CREATE TABLE runs (name TEXT PRIMARY KEY, volatile INTEGER NOT NULL, row TEXT);
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            PRAGMA user_version = ${VERSION};
            COMMIT;`);
        }
        return new RunIndex(db, results);
      } catch (e) {
        try {
          db?.close();
        } catch { /* closed */ }
        if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
          return null;
        }
        // not a database (a damaged file): it is derived, so it is rebuilt once
        if (attempt === 0 && /not a database|malformed|file is not/i.test(String(e))) {
          for (const f of [path, `${path}-wal`, `${path}-shm`]) {
            try {
              Deno.removeSync(f);
            } catch { /* absent */ }
          }
          continue;
        }
        return null;
      }
    }
    return null;
  }

  /**
   * Every run folder's row (in no set order): from the index where it is current, else
   * from `read` (then stored). Rows `read` gives as null (not a run folder) are left out.
   */
  async rows<R>(
    read: (name: string) => Promise<IndexedRead<R>>,
    codec: RowCodec<R> = jsonCodec<R>(),
  ): Promise<R[]> {
    const names = folders(join(this.#results, "runs"));
    const dirtyDir = join(this.#results, DIRTY_DIR);
    const dirty = new Set(files(dirtyDir));
    const known = new Map<string, { volatile: number; row: string | null }>();
    const all = this.#db.prepare("SELECT name, volatile, row FROM runs").all() as {
      name: string;
      volatile: number;
      row: string | null;
    }[];
    for (const r of all) known.set(r.name, r);
    const present = new Set(names);
    const upsert = this.#db.prepare(
      "INSERT INTO runs (name, volatile, row) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET volatile = excluded.volatile, row = excluded.row",
    );
    const changes: [string, number, string | null][] = [];
    const out: R[] = [];
    for (const name of names) {
      const k = known.get(name);
      if (k && !k.volatile && !dirty.has(name)) {
        if (k.row !== null) out.push(codec.decode(k.row));
        continue;
      }
      // the marker goes before the read: a write after this point leaves a new one
      if (dirty.has(name)) {
        try {
          Deno.removeSync(join(dirtyDir, name));
        } catch { /* another listing took it */ }
      }
      const { row, volatile } = await read(name);
      if (row === null) {
        changes.push([name, 1, null]);
        continue;
      }
      const text = codec.encode(row);
      // the row as a stored one reads back, so a listing's rows are alike whatever their source
      out.push(codec.decode(text));
      changes.push([name, volatile ? 1 : 0, text]);
    }
    const gone = [...known.keys()].filter((n) => !present.has(n));
    if (changes.length || gone.length) {
      const drop = this.#db.prepare("DELETE FROM runs WHERE name = ?");
      this.#db.exec("BEGIN IMMEDIATE");
      try {
        for (const c of changes) upsert.run(...c);
        for (const n of gone) drop.run(n);
        this.#db.exec("COMMIT");
      } catch (e) {
        this.#db.exec("ROLLBACK");
        throw e;
      }
    }
    // markers of folders that are gone
    for (const name of dirty) {
      if (!present.has(name)) {
        try {
          Deno.removeSync(join(dirtyDir, name));
        } catch { /* taken */ }
      }
    }
    return out;
  }

  /** A value kept beside the rows (null: none yet). */
  meta(key: string): string | null {
    const r = this.#db.prepare("SELECT value FROM meta WHERE key = ?").get(key) as
      | { value: string }
      | undefined;
    return r?.value ?? null;
  }

  /** Keeps `value` under `key` unless one is there already; returns the one kept. */
  keepMeta(key: string, value: string): string {
    this.#db.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)").run(key, value);
    return this.meta(key)!;
  }

  /** Forgets every row (and what they shared): the next listing reads every folder. */
  clear(): void {
    this.#db.exec("DELETE FROM runs; DELETE FROM meta;");
  }

  close(): void {
    this.#db.close();
  }
}
