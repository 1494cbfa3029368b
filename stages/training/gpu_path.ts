/**
 * The `webgpu` training path: the weights, gradients, Adam's moments and the weight average
 * live on the device in one arena buffer; each step is a handful of fused kernels
 * (`gpu_kernels.ts`); the host draws the random numbers (shuffles, dropout masks as bits,
 * label flips, instance noise) from the same streams in the same order as the host paths, so
 * a GPU run and a fast-cpu run differ only by float rounding. Work is recorded per call and
 * submitted at its end; every figure the calls of one iteration ask for comes back in one
 * read, when the loop awaits them.
 */
import * as tf from "@tensorflow/tfjs-core";
import { StageError } from "../../pipeline/errors.ts";
import type { GpuDevice } from "../backends/webgpu.ts";
import type { Activation } from "../schema.ts";
import { Adam } from "./adam.ts";
import { emaDecayAt } from "./ema.ts";
import {
  ACT,
  ADAM,
  ADD_NOISE,
  AVERAGE,
  COLSUM,
  EPILOGUE,
  GATHER,
  LOSS,
  LOSS_KERNEL,
  matmulSource,
  MEAN_SIGMOID,
  SLOT_BYTES,
} from "./gpu_kernels.ts";
import type { LossForm } from "./losses.ts";
import { type Net, variablesOf } from "./nets.ts";
import {
  type Batch,
  checkFinite,
  type CounterfeiterFit,
  type FitResult,
  type GanCore,
  type PoliceFit,
  policeLabels,
  type TrainingPath,
} from "./path.ts";

/** Why the webgpu path cannot train these settings (null: it can). */
export function gpuUnsupported(core: Pick<GanCore, "g" | "d">, lossForm: LossForm): string | null {
  if (lossForm !== "logits") return `the ${lossForm} loss form (it trains with loss.form "logits")`;
  for (const net of [core.g, core.d]) {
    if (!(net.hiddenActivation in ACT)) {
      return `the ${net.kind}'s ${net.hiddenActivation} hidden layers`;
    }
  }
  const out = core.g.outputActivation;
  if (!(out in ACT)) return `the counterfeiter's ${out} output`;
  return null;
}

/** One numbered word of a uniform slot: an integer, or {@link f32} for a float. */
type Word = number | { f: number };
const f32 = (f: number): Word => ({ f });

/** A dispatch waiting for its submit. */
interface Pending {
  kernel: GPUComputePipeline;
  slot: number;
  x: number;
  y: number;
}

/** GPU time by kernel from {@link GpuPath.startProfile}: calls and milliseconds. */
export type KernelProfile = Map<string, { calls: number; ms: number }>;

/** A net's place in the arena. */
interface NetLayout {
  net: Net;
  opt: Adam;
  sizes: { nIn: number; nOut: number }[];
  /** Offsets of W and b per layer inside the net's parameter block. */
  w: number[];
  b: number[];
  count: number;
  p: number;
  g: number;
  m: number;
  v: number;
  /** The weight average's block (counterfeiter with an average only). */
  avg: number;
}

/** Rows the path holds on the device: a slot of a ring, valid until the ring comes round. */
class GpuBatch implements Batch {
  constructor(
    readonly off: number,
    readonly rows: number,
    readonly dim: number,
    readonly ring: { stamps: number[] },
    readonly slot: number,
    readonly stamp: number,
  ) {}
}

const RING = 8;
/** Figures one read may hold (a fit's per-step losses count one each). */
const RESULTS = 1 << 16;
const f = Math.fround;

/** A message for what went wrong on the device, as one line naming the fix. */
function deviceError(e: GPUError | null, what: string): Error | null {
  if (!e) return null;
  if (e instanceof GPUOutOfMemoryError) {
    return new StageError(
      `out of GPU memory while ${what}; use smaller nets (model.*Hidden) or --backend fast-cpu`,
    );
  }
  return new Error(`WebGPU error while ${what}: ${e.message.split("\n")[0]}`);
}

/** Training on a WebGPU device (call {@link gpuUnsupported} first). */
export class GpuPath implements TrainingPath {
  readonly kind = "webgpu";
  readonly #dev: GPUDevice;
  readonly #gpu: GpuDevice;
  readonly #g: NetLayout;
  readonly #d: NetLayout;
  #arena!: GPUBuffer;
  #arenaFloats = 0;
  /** The arena before it grew, until its contents are copied into the new one. */
  #stale: { buffer: GPUBuffer; floats: number } | null = null;
  #used = 0;
  #ints!: GPUBuffer;
  #intWords = 0;
  #uniform!: GPUBuffer;
  #uniformSlots = 0;
  #bindGroup: GPUBindGroup | null = null;
  readonly #layout: GPUBindGroupLayout;
  readonly #kernels = new Map<string, GPUComputePipeline>();
  readonly #kernelNames = new Map<GPUComputePipeline, string>();
  #profile: { times: KernelProfile; reads: Promise<void>[] } | null = null;
  readonly #scratch = new Map<string, { off: number; size: number }>();
  readonly #rings = new Map<number, { offs: number[]; stamps: number[]; next: number }>();
  #stamp = 0;
  // the submit being recorded
  #pending: Pending[] = [];
  #slots: Uint32Array<ArrayBuffer> = new Uint32Array(64 * 64);
  /** The same memory as {@link GpuPath.#slots}, for the float words. */
  #slotFloats = new Float32Array(this.#slots.buffer);
  #slotCount = 0;
  #intData: Uint32Array<ArrayBuffer> = new Uint32Array(1024);
  #intCount = 0;
  #arenaWrites: { off: number; data: Float32Array<ArrayBuffer> }[] = [];
  // figures waiting for the next read
  #reads: {
    off: number;
    count: number;
    done: (v: Float32Array) => void;
    fail: (e: unknown) => void;
  }[] = [];
  #resultsUsed = 0;
  #flushScheduled = false;
  #errors: { scope: Promise<GPUError | null>; what: string }[] = [];
  #firstError: Error | null = null;
  #started = false;

  constructor(readonly gan: GanCore, gpu: GpuDevice) {
    this.#gpu = gpu;
    this.#dev = gpu.device;
    const storage = (type: GPUBufferBindingType) => ({ type });
    this.#layout = this.#dev.createBindGroupLayout({
      entries: [
        { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: storage("storage") },
        { binding: 1, visibility: GPUShaderStage.COMPUTE, buffer: storage("read-only-storage") },
        {
          binding: 2,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: "uniform", hasDynamicOffset: true, minBindingSize: SLOT_BYTES },
        },
      ],
    });
    // the state's blocks and room for a lecture-sized iteration's activations and batches
    const params = (n: Net) => variablesOf(n).reduce((s, v) => s + v.size, 0);
    this.#growArena(5 * params(gan.g) + 4 * params(gan.d) + (4 << 20));
    this.#g = this.#place(gan.g, gan.optG, gan.average !== null);
    this.#d = this.#place(gan.d, gan.optD, false);
    this.#ints = this.#buffer(4096, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST, "ints");
    this.#intWords = 1024;
    this.#growUniform(256);
  }

  /**
   * Sends the host's weights, moments and average before the first step, so what a caller
   * restores into the host objects after building the GAN (a checkpoint's Adam state) counts.
   */
  #start(): void {
    if (this.#started) return;
    this.#started = true;
    for (const n of [this.#g, this.#d]) this.#uploadNet(n);
  }

  // ---- memory -----------------------------------------------------------------------------

  #buffer(bytes: number, usage: number, what: string): GPUBuffer {
    this.#dev.pushErrorScope("out-of-memory");
    const b = this.#dev.createBuffer({ size: bytes, usage });
    this.#errors.push({ scope: this.#dev.popErrorScope(), what: `allocating the ${what} buffer` });
    return b;
  }

  /** Reserves `floats` numbers of the arena (it grows when full, keeping what it holds). */
  #alloc(floats: number): number {
    const off = this.#used;
    this.#used += Math.ceil(floats / 64) * 64;
    if (this.#used > this.#arenaFloats) this.#growArena(this.#used);
    return off;
  }

  #growArena(minFloats: number): void {
    const limit = Math.floor(this.#dev.limits.maxStorageBufferBindingSize / 4);
    if (minFloats > limit) {
      throw new StageError(
        `the training state needs ${
          Math.ceil(minFloats * 4 / 2 ** 20)
        } MiB in one GPU buffer, past this adapter's ${
          Math.floor(limit * 4 / 2 ** 20)
        } MiB binding limit; use smaller nets or --backend fast-cpu`,
      );
    }
    const floats = Math.min(limit, Math.max(minFloats, this.#arenaFloats * 2));
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const next = this.#buffer(floats * 4, usage, "training state");
    // what the device holds is copied over at the next submit, before anything runs on `next`
    if (this.#stale === null && this.#arena) {
      this.#stale = { buffer: this.#arena, floats: this.#arenaFloats };
    } else this.#arena?.destroy();
    this.#arena = next;
    this.#arenaFloats = floats;
    this.#bindGroup = null;
  }

  #growUniform(slots: number): void {
    this.#uniform?.destroy();
    this.#uniformSlots = slots;
    this.#uniform = this.#buffer(
      slots * SLOT_BYTES,
      GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      "dispatch settings",
    );
    this.#bindGroup = null;
  }

  /** A named working region of at least `floats` numbers (reused call to call). */
  #region(name: string, floats: number): number {
    const r = this.#scratch.get(name);
    if (r && r.size >= floats) return r.off;
    const off = this.#alloc(floats);
    this.#scratch.set(name, { off, size: floats });
    return off;
  }

  #place(net: Net, opt: Adam, average: boolean): NetLayout {
    const sizes = net.layers.map((l) => ({ nIn: l.W.shape[0], nOut: l.W.shape[1]! }));
    const w: number[] = [], b: number[] = [];
    let count = 0;
    for (const s of sizes) {
      w.push(count);
      count += s.nIn * s.nOut;
      b.push(count);
      count += s.nOut;
    }
    return {
      net,
      opt,
      sizes,
      w,
      b,
      count,
      p: this.#alloc(count),
      g: this.#alloc(count),
      m: this.#alloc(count),
      v: this.#alloc(count),
      avg: average ? this.#alloc(count) : -1,
    };
  }

  #uploadNet(n: NetLayout): void {
    const vars = variablesOf(n.net);
    const write = (base: number, arrays: ArrayLike<number>[]) => {
      const all = new Float32Array(n.count);
      let k = 0;
      for (const a of arrays) {
        all.set(a, k);
        k += a.length;
      }
      this.#arenaWrites.push({ off: base, data: all });
    };
    write(n.p, vars.map((v) => v.dataSync() as Float32Array));
    write(n.m, n.opt.engine.m);
    write(n.v, n.opt.engine.v);
    if (n.avg >= 0) write(n.avg, this.gan.average!.values);
  }

  // ---- recording ----------------------------------------------------------------------------

  #kernel(name: string, source: () => string): GPUComputePipeline {
    let k = this.#kernels.get(name);
    if (!k) {
      const module = this.#dev.createShaderModule({ code: source() });
      k = this.#dev.createComputePipeline({
        layout: this.#dev.createPipelineLayout({ bindGroupLayouts: [this.#layout] }),
        compute: { module, entryPoint: "main" },
      });
      this.#kernels.set(name, k);
      this.#kernelNames.set(k, name);
    }
    return k;
  }

  #matmulKernel(transA: boolean, transB: boolean): GPUComputePipeline {
    return this.#kernel(`mm${+transA}${+transB}`, () => matmulSource(transA, transB));
  }

  #dispatch(kernel: GPUComputePipeline, x: number, y: number, words: Word[]): void {
    if ((this.#slotCount + 1) * 64 > this.#slots.length) {
      const grown = new Uint32Array(this.#slots.length * 2);
      grown.set(this.#slots);
      this.#slots = grown;
      this.#slotFloats = new Float32Array(grown.buffer);
    }
    const base = this.#slotCount * 64;
    words.forEach((w, i) => {
      if (typeof w === "number") this.#slots[base + i] = w;
      else this.#slotFloats[base + i] = w.f;
    });
    this.#pending.push({ kernel, slot: this.#slotCount++, x, y });
  }

  /** Room for `words` host integers in this submit: the word they start at, and the room. */
  #reserveInts(words: number): { at: number; room: Uint32Array } {
    const at = this.#intCount;
    if (at + words > this.#intData.length) {
      const grown = new Uint32Array(Math.max(this.#intData.length * 2, at + words));
      grown.set(this.#intData.subarray(0, at));
      this.#intData = grown;
    }
    this.#intCount += words;
    return { at, room: this.#intData.subarray(at, at + words) };
  }

  /** Host integers for this submit; returns the word they start at. */
  #ints32(data: ArrayLike<number>): number {
    const { at, room } = this.#reserveInts(data.length);
    room.set(data);
    return at;
  }

  /** Host numbers into the arena before this submit's work. */
  #write(off: number, data: Float32Array<ArrayBuffer>): void {
    this.#arenaWrites.push({ off, data });
  }

  /** Sends what is recorded: the arena writes, the integers, the settings, the dispatches. */
  #submit(): void {
    const q = this.#dev.queue;
    this.#checkLost();
    if (this.#stale) {
      const { buffer, floats } = this.#stale, enc = this.#dev.createCommandEncoder();
      enc.copyBufferToBuffer(buffer, 0, this.#arena, 0, floats * 4);
      q.submit([enc.finish()]);
      q.onSubmittedWorkDone().then(() => buffer.destroy());
      this.#stale = null;
    }
    for (const { off, data } of this.#arenaWrites) q.writeBuffer(this.#arena, off * 4, data);
    this.#arenaWrites = [];
    if (this.#pending.length === 0) return;
    if (this.#intCount > this.#intWords) {
      this.#ints.destroy();
      this.#intWords = Math.max(this.#intCount, this.#intWords * 2);
      const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST;
      this.#ints = this.#buffer(this.#intWords * 4, usage, "random bits");
      this.#bindGroup = null;
    }
    if (this.#slotCount > this.#uniformSlots) {
      this.#growUniform(Math.max(this.#slotCount, this.#uniformSlots * 2));
    }
    if (this.#intCount) q.writeBuffer(this.#ints, 0, this.#intData, 0, this.#intCount);
    q.writeBuffer(this.#uniform, 0, this.#slots, 0, this.#slotCount * 64);
    this.#bindGroup ??= this.#dev.createBindGroup({
      layout: this.#layout,
      entries: [
        { binding: 0, resource: { buffer: this.#arena } },
        { binding: 1, resource: { buffer: this.#ints } },
        { binding: 2, resource: { buffer: this.#uniform, size: SLOT_BYTES } },
      ],
    });
    this.#dev.pushErrorScope("out-of-memory");
    this.#dev.pushErrorScope("validation");
    const enc = this.#dev.createCommandEncoder();
    if (this.#profile) this.#profiled(enc);
    else {
      const pass = enc.beginComputePass();
      let last: GPUComputePipeline | null = null;
      for (const p of this.#pending) {
        if (p.kernel !== last) pass.setPipeline(last = p.kernel);
        pass.setBindGroup(0, this.#bindGroup, [p.slot * SLOT_BYTES]);
        pass.dispatchWorkgroups(p.x, p.y);
      }
      pass.end();
      q.submit([enc.finish()]);
    }
    this.#errors.push({ scope: this.#dev.popErrorScope(), what: "running a training step" });
    this.#errors.push({ scope: this.#dev.popErrorScope(), what: "running a training step" });
    this.#pending = [];
    this.#slotCount = 0;
    this.#intCount = 0;
  }

  #checkLost(): void {
    if (this.#gpu.lost !== null) {
      throw new StageError(
        `the GPU device was lost (${this.#gpu.lost}); nothing was sealed: run again to resume from the last checkpoint, or use --backend fast-cpu`,
      );
    }
  }

  // ---- reading back -------------------------------------------------------------------------

  /** A slot for a figure a kernel writes, read with the iteration's other figures. */
  #result(count: number): { off: number; value: Promise<Float32Array> } {
    const region = this.#region("results", RESULTS);
    if (this.#resultsUsed + count > RESULTS) {
      throw new StageError(
        `one read would hold ${
          this.#resultsUsed + count
        } figures, past ${RESULTS}: use a larger fitBatchSize`,
      );
    }
    const off = region + this.#resultsUsed;
    this.#resultsUsed += count;
    const value = new Promise<Float32Array>((done, fail) => {
      this.#reads.push({ off: off - region, count, done, fail });
    });
    // a call that failed before returning this never awaits it: its rejection is not news
    value.catch(() => {});
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      // the loop issues an iteration's calls before it awaits: one read serves them all
      queueMicrotask(() => this.#flush());
    }
    return { off, value };
  }

  async #flush(): Promise<void> {
    this.#flushScheduled = false;
    const reads = this.#reads, count = this.#resultsUsed;
    this.#reads = [];
    this.#resultsUsed = 0;
    try {
      this.#submit();
      const region = this.#scratch.get("results")!.off;
      const data = await this.#read(region, count);
      for (const r of reads) r.done(data.subarray(r.off, r.off + r.count));
    } catch (e) {
      for (const r of reads) r.fail(e);
    }
  }

  /** Copies arena numbers to the host (after everything submitted so far). */
  async #read(off: number, count: number): Promise<Float32Array> {
    this.#checkLost();
    const bytes = Math.max(4, count * 4);
    const staging = this.#buffer(
      Math.ceil(bytes / 4) * 4,
      GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      "read-back",
    );
    const enc = this.#dev.createCommandEncoder();
    enc.copyBufferToBuffer(this.#arena, off * 4, staging, 0, count * 4);
    this.#dev.queue.submit([enc.finish()]);
    try {
      await staging.mapAsync(GPUMapMode.READ);
    } catch (e) {
      this.#checkLost();
      throw e;
    } finally {
      await this.#raiseErrors();
    }
    const out = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    return out;
  }

  async #raiseErrors(): Promise<void> {
    const errors = this.#errors;
    this.#errors = [];
    for (const { scope, what } of errors) {
      const e = deviceError(await scope, what);
      if (e && !this.#firstError) this.#firstError = e;
    }
    this.#checkLost();
    if (this.#firstError) throw this.#firstError;
  }

  // ---- the passes ---------------------------------------------------------------------------

  /**
   * Forward pass of `n` rows at `input` through `L`; with `masks` (one word offset per hidden
   * layer) the hidden layers drop out. `out` receives the last layer's output; returns the
   * offsets of each layer's activations and inputs for the backward pass.
   */
  #forward(
    L: NetLayout,
    input: number,
    n: number,
    prefix: string,
    masks: number[] | null,
    out?: number,
  ): { a: number[]; inputs: number[] } {
    const last = L.sizes.length - 1, a: number[] = [], inputs: number[] = [];
    const scale = f(1 / (1 - L.net.dropout));
    const hidden = ACT[L.net.hiddenActivation as Activation];
    const outAct = L.net.kind === "counterfeiter" ? ACT[L.net.outputActivation] : ACT.linear;
    let x = input;
    L.sizes.forEach(({ nIn, nOut }, l) => {
      const al = l === last && out !== undefined ? out : this.#region(`${prefix}.a${l}`, n * nOut);
      const mask = masks !== null && l < last;
      const h = mask ? this.#region(`${prefix}.h${l}`, n * nOut) : 0;
      inputs.push(x);
      a.push(al);
      this.#dispatch(this.#matmulKernel(false, false), Math.ceil(nOut / 64), Math.ceil(n / 64), [
        n,
        nOut,
        nIn,
        x,
        L.p + L.w[l],
        al,
        EPILOGUE.forward,
        l === last ? outAct : hidden,
        f32(L.net.slope),
        L.p + L.b[l],
        +mask,
        mask ? masks![l] : 0,
        f32(scale),
        h,
        0,
      ]);
      x = mask ? h : al;
    });
    return { a, inputs };
  }

  /**
   * Backward pass of `n` rows from the gradient at `dOut` (the last layer's pre-activation
   * gradient). With `grads` the weight and bias gradients are written; with `inputGrad` the
   * gradient with respect to the input goes there, through `inputAct` of `inputA` (the
   * previous net's output activation).
   */
  #backward(
    L: NetLayout,
    fw: { a: number[]; inputs: number[] },
    dOut: number,
    n: number,
    prefix: string,
    masks: number[] | null,
    grads: boolean,
    inputGrad?: { off: number; act: number; a: number },
  ): void {
    const scale = f(1 / (1 - L.net.dropout));
    const hidden = ACT[L.net.hiddenActivation as Activation];
    let dz = dOut;
    for (let l = L.sizes.length - 1; l >= 0; l--) {
      const { nIn, nOut } = L.sizes[l];
      if (grads) {
        this.#dispatch(this.#matmulKernel(true, false), Math.ceil(nOut / 64), Math.ceil(nIn / 64), [
          nIn,
          nOut,
          n,
          fw.inputs[l],
          dz,
          L.g + L.w[l],
          EPILOGUE.plain,
        ]);
        this.#dispatch(this.#kernel("colsum", () => COLSUM), Math.ceil(nOut / 64), 1, [
          n,
          nOut,
          dz,
          L.g + L.b[l],
        ]);
      }
      if (l === 0 && !inputGrad) break;
      const into = l > 0 ? this.#region(`${prefix}.dz${l - 1}`, n * nIn) : inputGrad!.off;
      const mask = l > 0 && masks !== null;
      this.#dispatch(this.#matmulKernel(false, true), Math.ceil(nIn / 64), Math.ceil(n / 64), [
        n,
        nIn,
        nOut,
        dz,
        L.p + L.w[l],
        into,
        EPILOGUE.backward,
        l > 0 ? hidden : inputGrad!.act,
        f32(L.net.slope),
        0,
        +mask,
        mask ? masks![l - 1] : 0,
        f32(scale),
        0,
        l > 0 ? fw.a[l - 1] : inputGrad!.a,
      ]);
      dz = into;
    }
  }

  #adam(L: NetLayout, rateFactor: number, flag: number): void {
    L.opt.t += 1;
    const c = Adam.consts(L.opt.opts, L.opt.t, rateFactor);
    const groups = Math.min(4096, Math.ceil(L.count / 256));
    this.#dispatch(this.#kernel("adam", () => ADAM), groups, 1, [
      L.count,
      L.p,
      L.g,
      L.m,
      L.v,
      f32(c.lrT),
      f32(c.b1),
      f32(c.b2),
      f32(c.eps),
      f32(c.corr2),
      flag,
    ]);
  }

  /** Dropout bits for `rows` rows of each hidden layer, drawn as the host paths draw them. */
  #maskBits(L: NetLayout, rows: number): number[] {
    const threshold = Math.ceil(L.net.dropout * 4294967296);
    return L.sizes.slice(0, -1).map(({ nOut }) => {
      const { at, room } = this.#reserveInts(Math.ceil(rows * nOut / 32));
      this.gan.streams.dropout.fillMaskBits(room, rows * nOut, threshold);
      return at;
    });
  }

  /**
   * An epoch's shuffled order (drawn as the host paths draw it) and its figures: a loss slot
   * per minibatch and, after them, the flag Adam sets on a parameter that is not finite.
   */
  #epoch(shuffle: { permutation(n: number): Int32Array }, n: number, batchSize: number) {
    const order = shuffle.permutation(n);
    const steps = Math.ceil(n / batchSize);
    const res = this.#result(steps + 1);
    const flag = res.off + steps;
    this.#write(flag, new Float32Array(1));
    return { order, res, flag };
  }

  /**
   * A minibatch's `m` rows of `dim` numbers by the indices at word `idx`: row i from `a`
   * below `split`, else from `b`; plus `noise.std` times the same row at `noise.off`.
   */
  #gather(
    m: number,
    dim: number,
    idx: number,
    { split, a, b, out }: { split: number; a: number; b: number; out: number },
    noise = { std: 0, off: 0 },
  ): void {
    this.#dispatch(
      this.#kernel("gather", () => GATHER),
      Math.min(1024, Math.ceil(m * dim / 256)),
      1,
      [
        m,
        dim,
        idx,
        split,
        a,
        b,
        out,
        f32(noise.std),
        noise.off,
      ],
    );
  }

  // ---- the seam -----------------------------------------------------------------------------

  #batch(rows: number, dim: number): GpuBatch {
    const size = rows * dim;
    let ring = this.#rings.get(size);
    if (!ring) this.#rings.set(size, ring = { offs: [], stamps: [], next: 0 });
    const slot = ring.next;
    ring.next = (slot + 1) % RING;
    if (ring.offs.length <= slot) {
      ring.offs.push(this.#alloc(size));
      ring.stamps.push(0);
    }
    ring.stamps[slot] = ++this.#stamp;
    return new GpuBatch(ring.offs[slot], rows, dim, ring, slot, this.#stamp);
  }

  #own(b: Batch): GpuBatch {
    if (!(b instanceof GpuBatch)) throw new Error("this batch belongs to another training path");
    if (b.ring.stamps[b.slot] !== b.stamp) {
      throw new Error(`a GPU batch was read after ${RING} newer batches of its size replaced it`);
    }
    return b;
  }

  upload(data: Float32Array, dim: number): Batch {
    this.#start();
    const b = this.#batch(data.length / dim, dim);
    this.#write(b.off, data.slice());
    return b;
  }

  generate(noise: Batch): Batch {
    this.#start();
    const z = this.#own(noise), L = this.#g;
    const out = this.#batch(z.rows, L.sizes.at(-1)!.nOut);
    this.#forward(L, z.off, z.rows, "g.infer", null, out.off);
    this.#submit();
    return out;
  }

  meanD(x: Batch): Promise<number> {
    this.#start();
    const b = this.#own(x), L = this.#d;
    const fw = this.#forward(L, b.off, b.rows, "d.infer", null);
    const res = this.#result(1);
    this.#dispatch(this.#kernel("meanSigmoid", () => MEAN_SIGMOID), 1, 1, [
      b.rows,
      fw.a.at(-1)!,
      res.off,
    ]);
    this.#submit();
    return res.value.then((v) => v[0]);
  }

  fitPolice(
    real: Batch,
    fake: Batch,
    { tricks, batchSize, rateFactor }: PoliceFit,
  ): Promise<FitResult> {
    try {
      this.#start();
      const r = this.#own(real), k = this.#own(fake), L = this.#d, dim = r.dim;
      const { augment, shuffle } = this.gan.streams;
      const nReal = r.rows, n = r.rows + k.rows;
      // labels and their flips, then the instance noise: the host paths' draws in their order
      const y = policeLabels(augment, nReal, k.rows, tricks);
      const labels = this.#region("d.labels", n);
      this.#write(labels, y);
      let noiseOff = 0;
      if (tricks.instanceNoise > 0) {
        noiseOff = this.#region("d.noise", n * dim);
        this.#write(noiseOff, new Float32Array(augment.normals(n * dim)));
      }
      const { order, res, flag } = this.#epoch(shuffle, n, batchSize);
      const xb = this.#region("d.x", batchSize * dim), dl = this.#region("d.dl", batchSize);
      const drop = L.net.dropout > 0;
      const rowsOf: number[] = [];
      for (let s = 0, start = 0; start < n; s++, start += batchSize) {
        const rows = order.subarray(start, Math.min(n, start + batchSize)), m = rows.length;
        rowsOf.push(m);
        const idx = this.#ints32(rows);
        this.#gather(m, dim, idx, { split: nReal, a: r.off, b: k.off, out: xb }, {
          std: tricks.instanceNoise,
          off: noiseOff,
        });
        const masks = drop ? this.#maskBits(L, m) : null;
        const fw = this.#forward(L, xb, m, "d.train", masks);
        this.#dispatch(this.#kernel("loss", () => LOSS_KERNEL), 1, 1, [
          m,
          LOSS.bceLabels,
          fw.a.at(-1)!,
          dl,
          labels,
          idx,
          res.off + s,
        ]);
        this.#backward(L, fw, dl, m, "d.train", masks, true);
        this.#adam(L, rateFactor, flag);
      }
      this.#submit();
      return res.value.then((v) => this.#fitResult(v, rowsOf, L.opt, "police"));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  fitCounterfeiter(
    noise: Batch,
    { batchSize, policeDropout, instanceNoise, rateFactor }: CounterfeiterFit,
  ): Promise<FitResult> {
    try {
      this.#start();
      const z = this.#own(noise), G = this.#g, D = this.#d, nd = z.dim, n = z.rows;
      const dim = G.sizes.at(-1)!.nOut;
      const { augment, shuffle } = this.gan.streams;
      const { order, res, flag } = this.#epoch(shuffle, n, batchSize);
      const zb = this.#region("g.z", batchSize * nd), dl = this.#region("g.dl", batchSize);
      const dFake = this.#region("g.dz.out", batchSize * dim);
      const noisy = instanceNoise > 0 ? this.#region("g.noisy", batchSize * dim) : 0;
      const eps = instanceNoise > 0 ? this.#region("g.noise", n * dim) : 0;
      const noiseData = instanceNoise > 0 ? new Float32Array(n * dim) : null;
      const form = this.gan.counterfeiterLoss === "bce"
        ? LOSS.bceOnes
        : this.gan.counterfeiterLoss === "leastSquares"
        ? LOSS.leastSquares
        : LOSS.hinge;
      const rowsOf: number[] = [];
      for (let s = 0, start = 0; start < n; s++, start += batchSize) {
        const rows = order.subarray(start, Math.min(n, start + batchSize)), m = rows.length;
        rowsOf.push(m);
        const idx = this.#ints32(rows);
        this.#gather(m, nd, idx, { split: 0xffffffff, a: z.off, b: 0, out: zb });
        const gMasks = G.net.dropout > 0 ? this.#maskBits(G, m) : null;
        const gf = this.#forward(G, zb, m, "g.train", gMasks);
        let fake = gf.a.at(-1)!;
        if (noiseData) {
          noiseData.set(augment.normals(m * dim), start * dim);
          this.#dispatch(
            this.#kernel("addNoise", () => ADD_NOISE),
            Math.min(1024, Math.ceil(m * dim / 256)),
            1,
            [
              m * dim,
              fake,
              eps + start * dim,
              noisy,
              f32(instanceNoise),
            ],
          );
          fake = noisy;
        }
        const dMasks = policeDropout && D.net.dropout > 0 ? this.#maskBits(D, m) : null;
        const df = this.#forward(D, fake, m, "d.cf", dMasks);
        this.#dispatch(this.#kernel("loss", () => LOSS_KERNEL), 1, 1, [
          m,
          form,
          df.a.at(-1)!,
          dl,
          0,
          0,
          res.off + s,
        ]);
        const gOut = G.net.outputActivation;
        this.#backward(D, df, dl, m, "d.cf", dMasks, false, {
          off: dFake,
          act: ACT[gOut],
          a: gf.a.at(-1)!,
        });
        this.#backward(G, gf, dFake, m, "g.train", gMasks, true);
        this.#adam(G, rateFactor, flag);
      }
      if (noiseData) this.#write(eps, noiseData);
      this.#submit();
      return res.value.then((v) => this.#fitResult(v, rowsOf, G.opt, "counterfeiter"));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** The epoch's loss as Keras reports it (mean over rows), and the NaN check. */
  #fitResult(v: Float32Array, rowsOf: number[], opt: Adam, who: string): FitResult {
    let total = 0, n = 0;
    rowsOf.forEach((m, s) => {
      total += v[s] * m;
      n += m;
    });
    const loss = total / n;
    opt.finite = v[rowsOf.length] === 0;
    checkFinite(opt, loss, who);
    return { loss, steps: rowsOf.length };
  }

  foldAverage(t: number): void {
    this.#start();
    const L = this.#g;
    if (!this.gan.average) return;
    const d = emaDecayAt(this.gan.average.decay, t);
    this.#dispatch(
      this.#kernel("average", () => AVERAGE),
      Math.min(4096, Math.ceil(L.count / 256)),
      1,
      [
        L.count,
        L.avg,
        L.p,
        f32(d),
        f32(1 - d),
      ],
    );
    this.#submit();
  }

  async download(x: Batch): Promise<Float32Array> {
    this.#start();
    const b = this.#own(x);
    this.#submit();
    return await this.#read(b.off, b.rows * b.dim);
  }

  async sync(): Promise<void> {
    this.#start();
    this.#submit();
    for (const L of [this.#g, this.#d]) {
      const vars = variablesOf(L.net);
      const [p, m, v] = [
        await this.#read(L.p, L.count),
        await this.#read(L.m, L.count),
        await this.#read(L.v, L.count),
      ];
      const avg = L.avg >= 0 ? await this.#read(L.avg, L.count) : null;
      let k = 0;
      vars.forEach((variable, i) => {
        const part = (a: Float32Array) => a.subarray(k, k + variable.size);
        const live = L.opt.engine.buffers?.params[i];
        if (live) live.set(part(p));
        else variable.assign(tf.tensor(part(p).slice(), variable.shape));
        L.opt.engine.m[i].set(part(m));
        L.opt.engine.v[i].set(part(v));
        if (avg) this.gan.average!.values[i].set(part(avg));
        k += variable.size;
      });
    }
  }

  // ---- profiling ---------------------------------------------------------------------------

  /**
   * Times every dispatch from now on with the device's timestamps (one pass each, so slower
   * than a plain run); {@link GpuPath.stopProfile} gives the totals by kernel. Throws where
   * the device has no timestamp queries.
   */
  startProfile(): void {
    if (!this.#dev.features.has("timestamp-query")) {
      throw new Error("this WebGPU device has no timestamp queries to profile with");
    }
    this.#profile = { times: new Map(), reads: [] };
  }

  /** The GPU time each kernel took since {@link GpuPath.startProfile}, and profiling off. */
  async stopProfile(): Promise<KernelProfile> {
    await this.sync();
    const p = this.#profile!;
    this.#profile = null;
    await Promise.all(p.reads);
    return p.times;
  }

  /** This submit's dispatches a pass each, between timestamps, read back by a promise. */
  #profiled(enc: GPUCommandEncoder): void {
    const n = this.#pending.length;
    const set = this.#dev.createQuerySet({ type: "timestamp", count: 2 * n });
    for (const [i, p] of this.#pending.entries()) {
      const pass = enc.beginComputePass({
        timestampWrites: {
          querySet: set,
          beginningOfPassWriteIndex: 2 * i,
          endOfPassWriteIndex: 2 * i + 1,
        },
      });
      pass.setPipeline(p.kernel);
      pass.setBindGroup(0, this.#bindGroup, [p.slot * SLOT_BYTES]);
      pass.dispatchWorkgroups(p.x, p.y);
      pass.end();
    }
    const bytes = 16 * n;
    const resolved = this.#dev.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    const read = this.#dev.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    enc.resolveQuerySet(set, 0, 2 * n, resolved, 0);
    enc.copyBufferToBuffer(resolved, 0, read, 0, bytes);
    this.#dev.queue.submit([enc.finish()]);
    // a kernel's name, a matmul's with its shape (slot words 0-2: M, N, K)
    const labels = this.#pending.map((p) => {
      const name = this.#kernelNames.get(p.kernel)!;
      const [m, n, k] = this.#slots.subarray(p.slot * 64, p.slot * 64 + 3);
      return name.startsWith("mm") ? `${name} ${m}x${n}x${k}` : name;
    });
    const times = this.#profile!.times;
    this.#profile!.reads.push(
      read.mapAsync(GPUMapMode.READ).then(() => {
        const t = new BigUint64Array(read.getMappedRange());
        labels.forEach((label, i) => {
          const e = times.get(label) ?? { calls: 0, ms: 0 };
          e.calls++;
          e.ms += Number(t[2 * i + 1] - t[2 * i]) / 1e6;
          times.set(label, e);
        });
        read.destroy();
        resolved.destroy();
        set.destroy();
      }),
    );
  }

  dispose(): void {
    for (const b of [this.#arena, this.#ints, this.#uniform]) b.destroy();
    this.#stale?.buffer.destroy();
  }
}
