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
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { join } from "node:path";

/** The index file under a results folder. */
export const INDEX_FILE = "index.sqlite";
/** The folder of markers naming run folders changed since the index read them. */
export const DIRTY_DIR = "index.dirty";

/** Bumped when a row's shape changes: an index of another version is rebuilt. */
const VERSION = 3;

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
  /** What a listing orders, groups and sums rows by without decoding them (none: no paging). */
  facets?(row: R): RowFacets;
}

/** A stored row's facets (see {@link RunIndex.entries} and {@link RunIndex.facts}). */
export interface RowFacets {
  /** Rows equal but for their resource (one sweep point's rungs) share it. */
  group: string;
  /** How far the row's run went (the sweep resource); 0 when it has none. */
  resource: number;
  /** The numbers a listing may sort by. */
  figures: Record<string, number | undefined>;
  /** A small JSON text of what the caller sums over every row (its aggregates). */
  facts: string;
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

/** A row of {@link RunIndex.entries}: name, group, resource, the sort figure (null: none). */
export type IndexEntry = [name: string, group: string, resource: number, value: number | null];

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

/**
 * How long after a folder's last change its modification time is trusted to say "no entry
 * came or went": a change within the same clock tick as the time read would not move it, so a
 * time this recent is not kept (git's "racy" entries, the same reasoning).
 */
const SETTLED_MS = 3000;

/** The `runs/` folder's identity and modification time, or null when it is missing. */
function folderStamp(dir: string): { stamp: string; mtime: number } | null {
  try {
    const st = Deno.statSync(dir);
    const mtime = st.mtime?.getTime() ?? NaN;
    return { stamp: `${st.ino ?? ""}:${st.dev}:${mtime}`, mtime };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/**
 * A statement whose rows come as arrays (several times cheaper than objects at 100k rows;
 * Deno's node:sqlite has it, its type declarations do not yet).
 */
function arrayRows(st: StatementSync): StatementSync {
  (st as unknown as { setReturnArrays(on: boolean): void }).setReturnArrays(true);
  return st;
}

/** A JSON path to the figure `name` of a row's figures. */
const figurePath = (name: string) => `$."${name.replace(/["\\]/g, "")}"`;

/** A statement's rows as arrays. */
function arrays(db: DatabaseSync, sql: string, ...params: (string | number)[]): unknown[][] {
  return arrayRows(db.prepare(sql)).all(...params) as unknown as unknown[][];
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
            DROP TABLE IF EXISTS listing;
            DROP TABLE IF EXISTS figures;
            CREATE TABLE runs (name TEXT PRIMARY KEY, volatile INTEGER NOT NULL, row TEXT,
              gen INTEGER NOT NULL DEFAULT 0);
            CREATE INDEX runs_volatile ON runs (volatile) WHERE volatile = 1;
            -- what orders and sums a listing, apart from the rows: a scan of it is a scan of
            -- a tenth of the bytes (the runs that are runs only)
            CREATE TABLE listing (name TEXT PRIMARY KEY, grp TEXT NOT NULL, res REAL NOT NULL,
              figs TEXT NOT NULL, facts TEXT NOT NULL) WITHOUT ROWID;
            CREATE INDEX listing_grp ON listing (grp);
            -- each run's figures, in order: a sorted page reads the first rows of a key
            CREATE TABLE figures (key TEXT NOT NULL, value REAL NOT NULL, name TEXT NOT NULL,
              PRIMARY KEY (key, value, name)) WITHOUT ROWID;
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
   * Brings the stored rows up to the folders: marked, new and in-flight folders are read
   * through `read`, rows of folders that are gone dropped. While the `runs/` folder's
   * modification time is one this index has seen settle, no entry came or went, so its
   * listing (100k entries: a third of a second) is spared. Returns how many rows changed.
   */
  async sync<R>(
    read: (name: string) => Promise<IndexedRead<R>>,
    codec: RowCodec<R> = jsonCodec<R>(),
  ): Promise<number> {
    const runsDir = join(this.#results, "runs");
    const dirtyDir = join(this.#results, DIRTY_DIR);
    const dirty = new Set(files(dirtyDir));
    const stamp = folderStamp(runsDir);
    const settled = stamp !== null && this.meta("runsStamp") === stamp.stamp;
    const toRead = new Set<string>(dirty);
    for (const [n] of arrays(this.#db, "SELECT name FROM runs WHERE volatile = 1")) {
      toRead.add(n as string);
    }
    let gone: string[] = [];
    let present: Set<string> | null = null;
    if (!settled) {
      const names = stamp ? folders(runsDir) : [];
      present = new Set(names);
      const known = new Set(arrays(this.#db, "SELECT name FROM runs").map((r) => r[0] as string));
      for (const n of names) if (!known.has(n)) toRead.add(n);
      gone = [...known].filter((n) => !present!.has(n));
    }
    const stored = this.#db.prepare("SELECT volatile, row FROM runs WHERE name = ?");
    const changes: { name: string; volatile: number; text: string | null; f?: RowFacets }[] = [];
    for (const name of [...toRead].sort()) {
      if (present && !present.has(name)) continue; // a marker of a folder that is gone
      // the marker goes before the read: a write after this point leaves a new one
      if (dirty.has(name)) {
        try {
          Deno.removeSync(join(dirtyDir, name));
        } catch { /* another listing took it */ }
      }
      const { row, volatile } = await read(name);
      const before = stored.get(name) as { volatile: number; row: string | null } | undefined;
      if (row === null) {
        if (!before || before.row !== null) changes.push({ name, volatile: 1, text: null });
        continue;
      }
      const text = codec.encode(row);
      if (before && before.row === text && before.volatile === (volatile ? 1 : 0)) continue;
      const f = codec.facets?.(row) ?? { group: name, resource: 0, figures: {}, facts: "{}" };
      changes.push({ name, volatile: volatile ? 1 : 0, text, f });
    }
    if (changes.length || gone.length) {
      const upsert = this.#db.prepare(
        `INSERT INTO runs (name, volatile, row, gen) VALUES (?, ?, ?, ?) ON CONFLICT(name)
         DO UPDATE SET volatile = excluded.volatile, row = excluded.row, gen = excluded.gen`,
      );
      const list = this.#db.prepare(
        "INSERT OR REPLACE INTO listing (name, grp, res, figs, facts) VALUES (?, ?, ?, ?, ?)",
      );
      const drop = this.#db.prepare("DELETE FROM runs WHERE name = ?");
      const unlist = this.#db.prepare("DELETE FROM listing WHERE name = ?");
      // a run's figures go by their key and value (what its listing row says they were)
      const oldFigures = arrayRows(this.#db.prepare("SELECT figs FROM listing WHERE name = ?"));
      const dropFigure = this.#db.prepare(
        "DELETE FROM figures WHERE key = ? AND value = ? AND name = ?",
      );
      const unfigure = (name: string) => {
        const r = oldFigures.get(name) as unknown as [string] | undefined;
        if (!r) return;
        for (const [k, v] of Object.entries(JSON.parse(r[0]))) {
          if (typeof v === "number") dropFigure.run(k, v, name);
        }
      };
      const figure = this.#db.prepare("INSERT INTO figures (key, value, name) VALUES (?, ?, ?)");
      this.#db.exec("BEGIN IMMEDIATE");
      try {
        // what was summed over the rows is stale; changed rows carry the new generation
        const generation = this.generation() + 1;
        this.#setMeta("generation", String(generation));
        for (const { name, volatile, text, f } of changes) {
          upsert.run(name, volatile, text, generation);
          unfigure(name);
          if (f) {
            list.run(name, f.group, f.resource, JSON.stringify(f.figures), f.facts);
            for (const [k, v] of Object.entries(f.figures)) {
              if (typeof v === "number" && Number.isFinite(v)) figure.run(k, v, name);
            }
          } else unlist.run(name);
        }
        for (const n of gone) unfigure(n), drop.run(n), unlist.run(n);
        this.#db.exec("COMMIT");
      } catch (e) {
        this.#db.exec("ROLLBACK");
        throw e;
      }
    }
    if (present) {
      // markers of folders that are gone
      for (const name of dirty) {
        if (!present.has(name)) {
          try {
            Deno.removeSync(join(dirtyDir, name));
          } catch { /* taken */ }
        }
      }
      // the folder's time is kept once settled; a later entry then moves it
      if (stamp && Date.now() - stamp.mtime > SETTLED_MS) this.#setMeta("runsStamp", stamp.stamp);
      else this.#db.prepare("DELETE FROM meta WHERE key = 'runsStamp'").run();
    }
    return changes.length + gone.length;
  }

  /**
   * Every run folder's row (in no set order): from the index where it is current, else
   * from `read` (then stored). Rows `read` gives as null (not a run folder) are left out.
   */
  async rows<R>(
    read: (name: string) => Promise<IndexedRead<R>>,
    codec: RowCodec<R> = jsonCodec<R>(),
  ): Promise<R[]> {
    await this.sync(read, codec);
    // every row as a stored one reads back, so a listing's rows are alike whatever their source
    return this.changedSince(0, codec);
  }

  /** How many times the stored rows changed (a row changed at generation g has gen g). */
  generation(): number {
    return Number(this.meta("generation") ?? 0);
  }

  /** The stored rows (runs) that changed after generation `since`; 0: every row. */
  changedSince<R>(since: number, codec: RowCodec<R> = jsonCodec<R>()): R[] {
    return arrays(this.#db, "SELECT row FROM runs WHERE row IS NOT NULL AND gen > ?", since)
      .map((r) => codec.decode(r[0] as string));
  }

  /** The names of the stored rows (folders that are runs), as of the last {@link sync}. */
  names(): string[] {
    return arrays(this.#db, "SELECT name FROM runs WHERE row IS NOT NULL").map((r) =>
      r[0] as string
    );
  }

  /** The stored rows of `names`, in that order (a name without one is left out). */
  get<R>(names: string[], codec: RowCodec<R> = jsonCodec<R>()): R[] {
    if (names.length > 1000) {
      // many: one scan beats a lookup each
      const text = new Map(
        arrays(this.#db, "SELECT name, row FROM runs WHERE row IS NOT NULL") as [string, string][],
      );
      return names.flatMap((n) => {
        const t = text.get(n);
        return t === undefined ? [] : [codec.decode(t)];
      });
    }
    const one = arrayRows(
      this.#db.prepare("SELECT row FROM runs WHERE name = ? AND row IS NOT NULL"),
    );
    const out: R[] = [];
    for (const n of names) {
      const r = one.get(n) as unknown as [string] | undefined;
      if (r) out.push(codec.decode(r[0]));
    }
    return out;
  }

  /** How many stored rows are runs. */
  count(): number {
    return arrays(this.#db, "SELECT count(*) FROM listing")[0][0] as number;
  }

  /**
   * Every run's name, group and resource, by name (code unit order), for ordering a listing
   * without decoding its rows; with `sortBy`, by that figure (null where a run has none).
   */
  entries(sortBy?: string): IndexEntry[] {
    if (sortBy === undefined) {
      return arrays(
        this.#db,
        "SELECT name, grp, res, NULL FROM listing ORDER BY name",
      ) as IndexEntry[];
    }
    return arrays(
      this.#db,
      "SELECT name, grp, res, json_extract(figs, ?) FROM listing ORDER BY name",
      figurePath(sortBy),
    ) as IndexEntry[];
  }

  /**
   * The first `limit` runs in order: by name (code unit order), or by the figure `sortBy`
   * (`descending` or not; equal values by name, runs without it last, by name).
   */
  head(limit: number, sortBy?: string, descending = false): IndexEntry[] {
    const n = Number.isFinite(limit) ? limit : -1;
    if (sortBy === undefined) {
      return arrays(
        this.#db,
        "SELECT name, grp, res, NULL FROM listing ORDER BY name LIMIT ?",
        n,
      ) as IndexEntry[];
    }
    const ranked = arrays(
      this.#db,
      `SELECT f.name, l.grp, l.res, f.value FROM figures f JOIN listing l ON l.name = f.name
       WHERE f.key = ? ORDER BY f.value ${descending ? "DESC" : "ASC"}, f.name LIMIT ?`,
      sortBy,
      n,
    ) as IndexEntry[];
    if (n >= 0 && ranked.length >= n) return ranked;
    const rest = arrays(
      this.#db,
      `SELECT name, grp, res, NULL FROM listing l WHERE NOT EXISTS
         (SELECT 1 FROM figures f WHERE f.name = l.name AND f.key = ?) ORDER BY name LIMIT ?`,
      sortBy,
      n < 0 ? -1 : n - ranked.length,
    ) as IndexEntry[];
    return [...ranked, ...rest];
  }

  /**
   * Every run of each group in `groups` that holds more than one run, by name, with the
   * figure `sortBy` (null where a run has none, or without `sortBy`).
   */
  groupMembers(groups: string[], sortBy?: string): IndexEntry[] {
    if (!groups.length) return [];
    return arrays(
      this.#db,
      `SELECT name, grp, res, ${sortBy === undefined ? "NULL" : "json_extract(figs, ?)"}
       FROM listing WHERE grp IN (
         SELECT grp FROM listing WHERE grp IN (SELECT value FROM json_each(?))
         GROUP BY grp HAVING count(*) > 1) ORDER BY name`,
      ...(sortBy === undefined ? [] : [figurePath(sortBy)]),
      JSON.stringify([...new Set(groups)]),
    ) as IndexEntry[];
  }

  /** Every run's name and facts text (its codec's {@link RowFacets.facts}), by name. */
  facts(): [name: string, facts: string][] {
    return arrays(this.#db, "SELECT name, facts FROM listing ORDER BY name") as [
      string,
      string,
    ][];
  }

  /**
   * `compute()`'s value, kept under `key` until a row changes (a sum over every row is paid
   * once per change, not once per listing).
   */
  cached<T>(key: string, compute: () => T): T {
    const generation = this.generation();
    const kept = this.meta(`cached:${key}`);
    if (kept !== null) {
      const { at, value } = JSON.parse(kept);
      if (at === generation) return value as T;
    }
    const value = compute();
    this.#setMeta(`cached:${key}`, JSON.stringify({ at: generation, value }));
    return value;
  }

  #setMeta(key: string, value: string): void {
    this.#db.prepare(
      "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    ).run(key, value);
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
    const generation = this.generation() + 1;
    this.#db.exec(`DELETE FROM runs; DELETE FROM listing; DELETE FROM figures;
      DELETE FROM meta WHERE key NOT IN ('generation', 'epoch');`);
    // generations go on counting, so a reader holding rows of an earlier one sees the change
    this.#setMeta("generation", String(generation));
  }

  /** This index file's identity: generations count within one (a rebuilt file has another). */
  epoch(): string {
    return this.meta("epoch") ?? this.keepMeta("epoch", crypto.randomUUID());
  }

  close(): void {
    this.#db.close();
  }
}
