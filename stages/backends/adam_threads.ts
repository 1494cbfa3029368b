/**
 * A second thread for the SIMD Adam. On the lecture's nets one Adam step streams ~41 MB
 * (parameters, both moments and the gradient read, three of them written), 48 times an
 * iteration, and one core cannot pull memory as fast as two (docs/speed.md has the figures).
 * So an optimizer's memory is a shared WebAssembly memory, and a worker thread running the
 * same kernel steps the second half of each large variable while the main thread steps the
 * first. Adam is elementwise: which thread computes an element cannot change its bits.
 *
 * The threads meet through a small shared control block (Atomics; no messages on the hot
 * path): the main thread posts a job, steps its part, then waits for the worker's. A worker
 * that is not up yet, or cannot run as the main thread does (its denormal mode), leaves the
 * whole step to the main thread. One worker serves every optimizer of the process, and it
 * does not keep the process alive.
 *
 * `GAN_ADAM_THREADS=1` keeps Adam on the main thread (the bench's side-by-side candidate);
 * see {@link adamThreads} for the default.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { adamThreads } from "./adam_threads.ts";
 * assert.equal(adamThreads({ GAN_ADAM_THREADS: "1" }, 16), 1);
 * assert.equal(adamThreads({}, 1), 1);
 * assert.equal(adamThreads({}, 16), 2);
 * assert.equal(adamThreads({ OPENBLAS_NUM_THREADS: "1" }, 16), 1);
 * ```
 */
import { MessageChannel, type MessagePort, Worker } from "node:worker_threads";
import { denormalsFlushInJs } from "./ftz.ts";

/** Slots of the control block (Int32 indices). */
export const Ctl = {
  /** The last job posted. */
  Seq: 0,
  /** The last job a thread claimed (the worker, or the main thread when the worker is late). */
  Claimed: 1,
  /** The last job the worker finished. */
  Done: 2,
  /** 1 when every value the worker wrote in its last job was finite. */
  Ok: 3,
  /** 1 once the worker is up. */
  Ready: 4,
  /** The arena the job is for. */
  Arena: 5,
  /** How many ranges the job has. */
  Ranges: 6,
  /** 1 when the main thread flushes denormals (the worker must do the same). */
  Ftz: 7,
  /** Non-zero when the worker cannot serve (it said why on stderr). */
  Failed: 8,
  /** Float32 slots: lrT, b1, b2, eps, corr2. */
  Consts: 16,
  /** Ranges: five Int32 each (p, g, m, v byte offsets, byte count). */
  Jobs: 32,
} as const;

const CONTROL_BYTES = 4096;
/** How many ranges fit in one job. */
export const MAX_RANGES = Math.floor((CONTROL_BYTES / 4 - Ctl.Jobs) / 5);
/** A variable is split between the threads from this many floats (smaller: main thread). */
export const SPLIT_MIN = 16384;
/** The main thread waits this long for a worker that has not started its part, then does it. */
const LATE_MS = 2000;
/** ... and this long for one that started and has not finished, then gives up. */
const STUCK_MS = 30000;

/**
 * Threads Adam may use here: `GAN_ADAM_THREADS` when set; else 1 on one core or where the
 * process was given one BLAS thread (`OPENBLAS_NUM_THREADS=1`: a sweep's `--jobs` share the
 * cores that way, and a second busy thread would only wait for a core); else 2.
 */
export function adamThreads(
  env: Record<string, string | undefined> = Deno.env.toObject(),
  cores: number = navigator.hardwareConcurrency ?? 1,
): 1 | 2 {
  const v = env.GAN_ADAM_THREADS;
  if (v !== undefined && v !== "") {
    if (v !== "1" && v !== "2") {
      throw new Error(`GAN_ADAM_THREADS=${v}: expected 1 or 2 (or unset for the default)`);
    }
    return v === "1" ? 1 : 2;
  }
  const blas = Number(env.OPENBLAS_NUM_THREADS);
  return cores >= 2 && !(blas >= 1 && blas < 2) ? 2 : 1;
}

/**
 * The constants of one Adam step (see stages/training/adam.ts for the two forms); here, where
 * both threads read them, and re-exported by adam_simd.ts.
 */
export interface AdamConsts {
  lrT: number;
  b1: number;
  b2: number;
  eps: number;
  corr2: number;
}

/** One range of a variable for a thread to step: byte offsets into the arena's memory. */
export interface AdamRange {
  p: number;
  g: number;
  m: number;
  v: number;
  bytes: number;
}

/** The shared worker and its control block. */
export class AdamHelper {
  readonly #ctl: Int32Array;
  readonly #consts: Float32Array;
  readonly #port: MessagePort;
  readonly #worker: Worker;
  #arenas = 0;
  #seq = 0;
  #dead = false;

  constructor(mod: WebAssembly.Module) {
    const sab = new SharedArrayBuffer(CONTROL_BYTES);
    this.#ctl = new Int32Array(sab);
    this.#consts = new Float32Array(sab, Ctl.Consts * 4, 5);
    const { port1, port2 } = new MessageChannel();
    this.#port = port1;
    this.#worker = new Worker(new URL("./adam_worker.ts", import.meta.url), {
      workerData: { control: sab, port: port2, mod },
      transferList: [port2],
    });
    this.#worker.on("error", (e: Error) => {
      this.#dead = true;
      console.error(`Adam's worker thread failed; Adam runs on the main thread: ${e.message}`);
    });
    this.#worker.unref();
    this.#port.unref();
  }

  /**
   * Registers `owner`'s shared memory; returns the arena id that jobs name. When `owner` is
   * collected, the worker lets go of the memory too.
   */
  register(owner: object, memory: WebAssembly.Memory): number {
    const id = ++this.#arenas;
    this.#port.postMessage({ id, memory });
    this.#collected.register(owner, id);
    return id;
  }

  readonly #collected = new FinalizationRegistry<number>((id) => {
    this.#port.postMessage({ id });
  });

  /** Whether a job posted now would be served by the worker. */
  get usable(): boolean {
    return !this.#dead && Atomics.load(this.#ctl, Ctl.Ready) === 1 &&
      Atomics.load(this.#ctl, Ctl.Failed) === 0;
  }

  /** Resolves once the worker is up (it starts asynchronously); throws after `timeoutMs`. */
  async whenUsable(timeoutMs = 10000): Promise<this> {
    for (let t = 0; !this.usable; t += 10) {
      if (t > timeoutMs) throw new Error(`Adam's worker thread did not come up in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return this;
  }

  /**
   * Posts `ranges` of arena `id` to the worker, runs `mine` here, then waits for the worker.
   * If the worker has not started by then (late or gone), the main thread runs `theirs` (the
   * same ranges through its own kernel). Returns whether both parts stayed finite.
   */
  run(
    id: number,
    ranges: AdamRange[],
    c: AdamConsts,
    mine: () => boolean,
    theirs: () => boolean,
  ): boolean {
    const ctl = this.#ctl, seq = ++this.#seq;
    ctl[Ctl.Arena] = id;
    ctl[Ctl.Ranges] = ranges.length;
    ctl[Ctl.Ftz] = denormalsFlushInJs() ? 1 : 0;
    this.#consts.set([c.lrT, c.b1, c.b2, c.eps, c.corr2]);
    ranges.forEach((r, k) => ctl.set([r.p, r.g, r.m, r.v, r.bytes], Ctl.Jobs + 5 * k));
    Atomics.store(ctl, Ctl.Seq, seq);
    Atomics.notify(ctl, Ctl.Seq);
    let ok = mine();
    const t0 = performance.now();
    let spins = 0;
    while (Atomics.load(ctl, Ctl.Done) !== seq) {
      if ((++spins & 1023) !== 0) continue;
      const waited = performance.now() - t0;
      if (waited > LATE_MS && Atomics.compareExchange(ctl, Ctl.Claimed, seq - 1, seq) === seq - 1) {
        // the worker never started this job: it is now ours, and the worker is not trusted again
        this.#dead = true;
        console.error(`Adam's worker thread did not answer in ${LATE_MS} ms; Adam runs here`);
        return theirs() && ok;
      }
      if (waited > STUCK_MS) {
        throw new Error(
          `Adam's worker thread started a step and did not finish it in ${STUCK_MS / 1000} s; ` +
            "set GAN_ADAM_THREADS=1 to keep Adam on the main thread",
        );
      }
    }
    if (Atomics.load(ctl, Ctl.Failed) !== 0) {
      // it could not run as this thread does (said why on stderr) and left its part undone
      this.#dead = true;
      return theirs() && ok;
    }
    ok = Atomics.load(ctl, Ctl.Ok) === 1 && ok;
    return ok;
  }
}

let helper: AdamHelper | null | undefined;

/** The process's Adam worker, started on first use; null where Adam keeps to one thread. */
export function adamHelper(mod: WebAssembly.Module): AdamHelper | null {
  if (helper !== undefined) return helper;
  helper = null;
  if (adamThreads() < 2 || typeof SharedArrayBuffer === "undefined") return helper;
  try {
    helper = new AdamHelper(mod);
  } catch (e) {
    console.error(`Adam's worker thread could not start; Adam runs on the main thread: ${e}`);
  }
  return helper;
}
