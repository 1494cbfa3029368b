/**
 * The Adam worker thread (see adam_threads.ts): waits for a job in the control block, steps
 * its ranges with the same SIMD kernel as the main thread, says it is done. Arenas arrive (and
 * leave) as messages, read synchronously at the start of each job.
 */
import { type MessagePort, receiveMessageOnPort, workerData } from "node:worker_threads";
import { Ctl } from "./adam_threads.ts";
import { denormalsFlushInJs, flushDenormals } from "./ftz.ts";

type AdamFn = (...args: number[]) => number;

const { control, port, mod } = workerData as {
  control: SharedArrayBuffer;
  port: MessagePort;
  mod: WebAssembly.Module;
};
const ctl = new Int32Array(control);
const consts = new Float32Array(control, Ctl.Consts * 4, 5);
const kernels = new Map<number, AdamFn>();

/** Takes the arenas registered (or dropped) since the last job. */
function drain(): void {
  for (let msg = receiveMessageOnPort(port); msg; msg = receiveMessageOnPort(port)) {
    const { id, memory } = msg.message as { id: number; memory?: WebAssembly.Memory };
    if (!memory) {
      kernels.delete(id); // the arena was collected on the main thread
      continue;
    }
    const inst = new WebAssembly.Instance(mod, { env: { mem: memory } });
    kernels.set(id, inst.exports.adam as AdamFn);
  }
}

function kernel(id: number): AdamFn {
  drain();
  // a message posted just before the job may not be readable yet: wait a little for it
  for (let waited = 0; !kernels.has(id) && waited < 1000; waited++) {
    Atomics.wait(ctl, Ctl.Failed, 0, 1);
    drain();
  }
  const fn = kernels.get(id);
  if (!fn) throw new Error(`arena ${id} was never registered`);
  return fn;
}

/** Matches the main thread's denormal mode; false if this thread cannot. */
function sameDenormals(flush: boolean): boolean {
  if (denormalsFlushInJs() === flush) return true;
  flushDenormals(flush);
  return denormalsFlushInJs() === flush;
}

Atomics.store(ctl, Ctl.Ready, 1);
let seen = Atomics.load(ctl, Ctl.Seq);
for (;;) {
  Atomics.wait(ctl, Ctl.Seq, seen);
  seen = Atomics.load(ctl, Ctl.Seq);
  // the main thread takes a job the worker was too late for; then it is not ours
  if (Atomics.compareExchange(ctl, Ctl.Claimed, seen - 1, seen) !== seen - 1) continue;
  try {
    if (!sameDenormals(ctl[Ctl.Ftz] === 1)) {
      throw new Error("this thread cannot flush denormals as the main thread does");
    }
    const fn = kernel(ctl[Ctl.Arena]);
    const [lrT, b1, b2, eps, corr2] = consts;
    let ok = 1;
    for (let k = 0, n = ctl[Ctl.Ranges]; k < n; k++) {
      const o = Ctl.Jobs + 5 * k;
      ok &= fn(ctl[o], ctl[o + 1], ctl[o + 2], ctl[o + 3], ctl[o + 4], lrT, b1, b2, eps, corr2);
    }
    Atomics.store(ctl, Ctl.Ok, ok);
  } catch (e) {
    console.error(`Adam's worker thread: ${(e as Error).message}; Adam runs on the main thread`);
    Atomics.store(ctl, Ctl.Failed, 1);
  }
  Atomics.store(ctl, Ctl.Done, seen);
}
