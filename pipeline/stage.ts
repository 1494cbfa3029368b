/**
 * The stage contract. A stage is data (name, version, needs, the config it picks) plus a
 * `run` function, so the graph can be listed and explained without running anything.
 *
 * @example
 * ```ts
 * import type { Stage } from "./stage.ts";
 * const hello: Stage = {
 *   name: "hello",
 *   version: 1,
 *   needs: [],
 *   pick: (cfg) => ({ seed: cfg.seed }),
 *   run: async (ctx) => { await Deno.writeTextFile(`${ctx.outDir}/hello.txt`, "hi"); },
 * };
 * ```
 */
import type { EngineConfig } from "./schema.ts";
import type { Progress } from "./progress.ts";

/** Facts about the tensor engine that change a stage's numbers. */
export interface RuntimeFacts {
  /**
   * The engine and whatever in it rounds differently: `fast-cpu/openblas-SkylakeX-t2/r2` is
   * fast-cpu with OpenBLAS's SkylakeX kernels on 2 threads, kernel revision 2.
   */
  backend: string;
  tfjs: string;
  /** `flush`: denormals flush to zero (FTZ/DAZ); `ieee`: they do not (off, or unsupported). */
  denormals: "flush" | "ieee";
}

/** What a stage's `run` gets. */
export interface StageContext<C extends EngineConfig = EngineConfig> {
  cfg: C;
  /** The folder to write artifacts into (a temporary folder, renamed on success). */
  outDir: string;
  /** Artifact folders of the stages this one needs, by name. */
  inputs: Record<string, string>;
  /** A folder that survives a crash, for checkpoints of long stages; removed on success. */
  workDir: string;
  progress: Progress;
  runtime: RuntimeFacts;
  /**
   * A cached, shorter result this run continues (see {@link Stage.continues}): the entry's
   * folder and its length.
   */
  continueFrom?: { dir: string; key: string; length: number };
}

/** A pipeline stage. */
export interface Stage<C extends EngineConfig = EngineConfig> {
  name: string;
  /** Bump when the stage's semantics change: old cache entries stop matching. */
  version: number;
  needs: string[];
  /** The part of the config this stage depends on (and nothing more). */
  pick(cfg: C): unknown;
  /** Whether the tensor engine's facts (backend, tfjs version) are part of its key. */
  usesTensors?: boolean;
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
