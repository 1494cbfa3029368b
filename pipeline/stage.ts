/**
 * The stage contract. A stage is data (name, code, needs, the config it picks) plus a `run`
 * function, so the graph can be listed and explained without running anything.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { Stage } from "./stage.ts";
 * const hello: Stage = {
 *   name: "hello",
 *   code: import.meta.url,
 *   needs: [],
 *   pick: (cfg) => ({ seed: cfg.seed }),
 *   run: async (ctx) => { await Deno.writeTextFile(`${ctx.outDir}/hello.txt`, "hi"); },
 * };
 * assert.deepEqual(hello.pick({ name: "x", seed: 3 } as never), { seed: 3 });
 * ```
 */
import type { EngineConfig } from "./schema.ts";
import type { Progress } from "./progress.ts";
import type { LiveLog } from "./live.ts";
import type { CodeDigest } from "./code_digest.ts";
import type { ResumableState } from "./resumable.ts";

/**
 * What an application's stages compute on, as the application declares it (its tensor
 * engine, say). The engine treats it as opaque: the facts go into the key of every stage that
 * `usesRuntime`, and so does the code of the modules that implement it.
 */
export interface Runtime {
  /** Facts that change the numbers (kernel family, library versions, float modes). */
  facts: Record<string, unknown>;
  /** The modules that implement it (URLs; their import graph is hashed, not the URLs). */
  modules?: string[];
}

/**
 * Everything that goes into a stage's cache key (its SHA-256 is the key); run.json and each
 * entry's meta.json keep it, so a miss can be explained.
 */
export interface KeyInputs {
  stage: string;
  /** The part of the config the stage reads. */
  config: unknown;
  /** The code it runs: project modules in its import graph, locked packages. */
  code: CodeDigest;
  /** Upstream stage -> the content digest of the entry's outputs it reads. */
  upstream: Record<string, string>;
  /** The runtime's facts (for a stage that uses the runtime), else null. */
  runtime: unknown;
  /** Inputs outside the config (local file contents), else null. */
  fingerprint: unknown;
}

/** What a stage's `run` gets. */
export interface StageContext<C extends EngineConfig = EngineConfig> {
  cfg: C;
  /** The folder to write artifacts into (a temporary folder, renamed on success). */
  outDir: string;
  /** Artifact folders of the stages this one needs, by name. */
  inputs: Record<string, string>;
  /**
   * Sealed resumable state that survives a crash, for checkpoints of long stages (in a work
   * folder the runner removes once the entry is sealed).
   */
  resume: ResumableState;
  progress: Progress;
  /**
   * Rows and files others may watch while the stage runs (the run folder's `live/`); absent
   * where nothing watches (a stage called directly).
   */
  live?: LiveLog;
  runtime: Runtime;
  /**
   * A cached, shorter result this run continues (see {@link Stage.continues}): the entry's
   * folder and its length. The runner has checked its files against its seal and holds it
   * (so `gc` leaves it) until the stage is done.
   */
  continueFrom?: { dir: string; key: string; length: number };
}

/** A pipeline stage. */
export interface Stage<C extends EngineConfig = EngineConfig> {
  name: string;
  /**
   * The stage's module (`import.meta.url`): its import graph and the packages it reaches
   * are part of its key, so an edit to any of them reruns it.
   */
  code: string;
  /**
   * Packages the stage reads as data rather than imports (fonts, a dataset shipped in a
   * package), by the names the import map gives them: their locked versions join the key.
   */
  packages?: string[];
  /**
   * Outputs that hold wall-clock figures (timings): kept in the entry and its seal, but left
   * out of the digest downstream keys use, so a rerun that differs only in them counts as
   * giving the same outputs.
   */
  volatile?: string[];
  needs: string[];
  /** The part of the config this stage depends on (and nothing more). */
  pick(cfg: C): unknown;
  /** Whether the runtime's facts and code (the application's tensor engine) are in its key. */
  usesRuntime?: boolean;
  /** Inputs outside the config that change the result (e.g. local file contents). */
  fingerprint?(cfg: C): Promise<unknown>;
  /** One-line description for listings. */
  doc?: string;
  /**
   * Paths (relative to the entry) the stage must have written: an entry missing one is
   * never committed, so a stage cut short can not pass for a finished one.
   */
  outputs?(cfg: C): string[];
  /**
   * For a stage whose longer result continues a shorter one (a training loop): the length its
   * picked config asks for, and the picked config without it. A missing entry is then built by
   * continuing the longest cached entry that is equal but shorter (`ctx.continueFrom`); the
   * stage must give the same bits as a run made in one go.
   */
  continues?: { length(picked: unknown): number; without(picked: unknown): unknown };
  /** Produces the artifacts; may return a summary stored in meta.json. */
  run(ctx: StageContext<C>): Promise<Record<string, unknown> | void>;
}
