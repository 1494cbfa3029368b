/**
 * `deno task bench`: what a run costs, side by side with the PyTorch reference in one run.
 *
 * - Per-iteration engines: seconds per lecture iteration (32 + 16 Adam steps of minibatch
 *   32) and per large-batch iteration (one step on 1000 rows + one on 500) for each backend,
 *   from a fresh initialisation, with GFLOP/s and the fraction of this machine's sgemm rate.
 * - The loop: the real `adversarial` loop (MNIST, the baseline config, the five D
 *   measurements per iteration included) for `--loop-iters` iterations (150; `--stage`: the
 *   whole 500), against the reference's same number of iterations, once with PyTorch's
 *   defaults and once with `torch.set_flush_denormal(True)`. Reported over the early window
 *   (iterations 1-10), the steady state (the last 50) and the whole run: denormals appear
 *   after ~25 iterations, so the first few say little about a run. Ours and the reference
 *   run back to back; `--loop-pairs N` repeats that set N times and prints the median ratio.
 *
 * Candidates run in separate processes, interleaved over rounds, so a noisy neighbour hits
 * all of them alike. The header names the CPU and the BLAS kernel; results go to a JSON file.
 */
import { parseArgs } from "node:util";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs-core";
import { type BackendName, cpuModel, selectBackend } from "../backends/mod.ts";
import { loadBlas } from "../backends/blas.ts";
import { resolveConfig } from "../schema.ts";
import { Rng } from "../../pipeline/rng.ts";
import { adversarialIterations } from "../training/loop.ts";
import type { HistoryRow } from "../vocabulary.ts";
import { makeGan } from "../training/gan.ts";
import { NO_TRICKS } from "../training/path.ts";
import { initNets } from "../training/nets.ts";
import { streamsFor } from "../training/streams.ts";
import { npmDataDir } from "../download.ts";
import { parseIdx } from "../formats/idx.ts";
import { copyRows } from "../training/fit.ts";
import { sweepBench } from "./sweep_bench.ts";
import { LiveLog } from "../../pipeline/live.ts";
import { uiBench } from "./ui_bench.ts";
import { gpuLoopWorker, gpuMain } from "./gpu_bench.ts";
import { adamBytesPerIteration, adamTrafficWorker } from "./adam_bench.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const TORCH_REF = join(ROOT, "..", "shared", "reference", "torch_gan_bench.py");

/** A candidate engine: a backend name and environment. */
interface Candidate {
  label: string;
  backend: BackendName;
  env?: Record<string, string>;
}

const CANDIDATES: Candidate[] = [
  { label: "fast-cpu (BLAS)", backend: "fast-cpu" },
  { label: "fast-cpu (no BLAS)", backend: "fast-cpu", env: { GAN_BLAS: "off" } },
  { label: "wasm (stock tfjs)", backend: "wasm" },
  { label: "cpu (stock tfjs)", backend: "cpu" },
];

/** Matmul FLOPs of one iteration of the lecture's networks (both variants do the same work). */
export function iterationFlops(g: number[], d: number[], batch = 500): number {
  const pairs = (s: number[]) => s.slice(0, -1).map((n, i) => n * s[i + 1]);
  const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
  const gAll = sum(pairs(g)), dAll = sum(pairs(d));
  const gInner = gAll - pairs(g)[0], dInner = dAll - pairs(d)[0];
  const police = 2 * batch * 2 * (dAll + dAll + dInner); // forward, weight grads, input grads
  const fakes = 2 * batch * gAll;
  const counterfeiter = 2 * batch * (gAll + gAll + gInner + dAll + dAll); // G fwd/W/in, D fwd/in
  return police + fakes + counterfeiter;
}

async function mnistTrain(): Promise<Float32Array> {
  const bytes = await Deno.readFile(join(npmDataDir(), "train-images-idx3-ubyte"));
  const idx = parseIdx(bytes, "train images", 3);
  return Float32Array.from(idx.data, (v) => v / 255);
}

/** Worker: times iterations of one variant on one backend; prints one JSON line. */
async function worker(backend: BackendName, variant: string, iters: number, warmup: number) {
  const choice = await selectBackend(backend);
  const cfg = await resolveConfig(join(ROOT, "configs/baseline.json"));
  const train = await mnistTrain();
  const dim = 784, n = train.length / dim;
  const { g, d } = initNets(cfg, dim, new Rng(0, 1), new Rng(0, 2));
  const gan = makeGan(cfg, g, d, streamsFor(cfg, "adversarial"));
  const [mbD, mbG] = variant === "large" ? [1000, 500] : [32, 32];
  const { path, streams } = gan;
  const iteration = async () => {
    const noise = path.upload(streams.data.normals(500 * 10), 10);
    const rows = Int32Array.from({ length: 500 }, () => streams.data.int(n));
    const real = path.upload(copyRows(train, dim, rows), dim);
    const fakes = path.generate(noise);
    await path.fitPolice(real, fakes, { batchSize: mbD, tricks: NO_TRICKS, rateFactor: 1 });
    await path.fitCounterfeiter(noise, {
      batchSize: mbG,
      policeDropout: false,
      instanceNoise: 0,
      rateFactor: 1,
    });
  };
  for (let i = 0; i < warmup; i++) await iteration();
  const times: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    await iteration();
    times.push((performance.now() - t0) / 1000);
  }
  console.log(
    JSON.stringify({
      backend: choice.runtime.facts.backend,
      notes: choice.notes,
      times,
      tensors: tf.memory().numTensors,
    }),
  );
}

/** Worker: the real adversarial loop for `iters` iterations; prints per-iteration seconds. */
async function loopWorker(iters: number, flush: boolean, live: boolean, measureRows?: string) {
  const choice = await selectBackend("fast-cpu", { flushDenormals: flush });
  const cfg = await resolveConfig(
    join(ROOT, "configs/baseline.json"),
    measureRows ? [`adversarial.measureRows=${measureRows}`] : [],
  );
  const train = await mnistTrain();
  const dim = 784;
  const { g, d } = initNets(cfg, dim, new Rng(cfg.seed, 1), new Rng(cfg.seed, 2));
  const gan = makeGan(cfg, g, d, streamsFor(cfg, "adversarial"));
  const history: HistoryRow[] = [];
  // --live: each iteration's row appended to a live file, as the stage does for watchers
  const runDir = live ? await Deno.makeTempDir({ prefix: "gan-bench-live-" }) : null;
  const log = runDir ? LiveLog.open(runDir, "adversarial") : null;
  await adversarialIterations(gan, cfg.adversarial, {
    train,
    dim,
    to: iters,
    history,
    onIteration: log ? (row) => log.row({ kind: "iteration", of: iters, ...row }) : undefined,
  });
  log?.close();
  if (runDir) await Deno.remove(runDir, { recursive: true });
  console.log(
    JSON.stringify({
      backend: choice.runtime.facts.backend,
      denormals: choice.runtime.facts.denormals,
      notes: choice.notes,
      times: history.map((r) => r.seconds),
    }),
  );
}

/** Seconds per phase of lecture iterations: where an iteration's time goes. */
export interface PhaseTimes {
  /** Making the 500 fakes (and the counterfeiter's after-step fakes). */
  generate: number;
  /** The five D measurements of 500 rows each (the history's columns). */
  dMeasurements: number;
  /** The police's and counterfeiter's minibatch-32 forward/backward passes (Adam excluded). */
  minibatchSteps: number;
  /** The Adam updates of both nets. */
  adam: number;
  /** Noise, row sampling and copying. */
  other: number;
}

/**
 * Worker: `iters` lecture iterations timed by phase (the loop's own steps, in its order, on
 * the baseline config); prints the mean seconds per iteration of each phase. A host path
 * computes each step when called, so timing the calls times the work.
 */
async function profileWorker(iters: number) {
  await selectBackend("fast-cpu");
  const cfg = await resolveConfig(join(ROOT, "configs/baseline.json"));
  const train = await mnistTrain();
  const dim = 784, nTrain = train.length / dim, a = cfg.adversarial;
  const { g, d } = initNets(cfg, dim, new Rng(cfg.seed, 1), new Rng(cfg.seed, 2));
  const gan = makeGan(cfg, g, d, streamsFor(cfg, "adversarial"));
  let adam = 0;
  for (const opt of [gan.optD, gan.optG]) {
    // Adam's share, timed inside the real fits
    for (const method of ["apply", "applyBuffered"] as const) {
      const inner = opt[method].bind(opt) as (...xs: unknown[]) => void;
      (opt as unknown as Record<string, unknown>)[method] = (...xs: unknown[]) => {
        const t0 = performance.now();
        inner(...xs);
        adam += performance.now() - t0;
      };
    }
  }
  const t = { generate: 0, dMeasurements: 0, fits: 0, other: 0 };
  const timed = <T>(k: keyof typeof t, f: () => T): T => {
    const t0 = performance.now();
    const out = f();
    t[k] += performance.now() - t0;
    return out;
  };
  const { path, streams } = gan;
  for (let it = 0; it < iters; it++) {
    const noise = timed(
      "other",
      () => path.upload(streams.data.normals(a.batchSize * gan.noiseDim), gan.noiseDim),
    );
    const real = timed("other", () => {
      const rows = Int32Array.from({ length: a.batchSize }, () => streams.data.int(nTrain));
      return path.upload(copyRows(train, dim, rows), dim);
    });
    const fakes = timed("generate", () => path.generate(noise));
    timed("dMeasurements", () => [path.meanD(real), path.meanD(fakes)]);
    const police = { batchSize: a.fitBatchSize, tricks: NO_TRICKS, rateFactor: 1 };
    await timed("fits", () => path.fitPolice(real, fakes, police));
    timed("dMeasurements", () => [path.meanD(real), path.meanD(fakes)]);
    await timed("fits", () =>
      path.fitCounterfeiter(noise, {
        batchSize: a.fitBatchSize,
        policeDropout: a.policeDropoutInCounterfeiterStep,
        instanceNoise: 0,
        rateFactor: 1,
      }));
    const after = timed("generate", () => path.generate(noise));
    timed("dMeasurements", () => path.meanD(after));
  }
  const per = (ms: number) => ms / 1000 / iters;
  const phases: PhaseTimes = {
    generate: per(t.generate),
    dMeasurements: per(t.dMeasurements),
    minibatchSteps: per(t.fits - adam),
    adam: per(adam),
    other: per(t.other),
  };
  console.log(JSON.stringify({ phases }));
}

/** Worker: this machine's sgemm rate through the loaded BLAS (GFLOP/s). */
function sgemmWorker() {
  const blas = loadBlas();
  const n = 1024;
  const a = new Rng(1).uniforms(n * n), b = new Rng(2).uniforms(n * n), c = new Float32Array(n * n);
  blas.sgemm(false, false, n, n, n, a, n, b, n, c, n);
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    blas.sgemm(false, false, n, n, n, a, n, b, n, c, n);
    times.push((performance.now() - t0) / 1000);
  }
  const best = Math.min(...times);
  console.log(
    JSON.stringify({ kind: blas.kind, source: blas.source, gflops: (2 * n ** 3) / best / 1e9 }),
  );
}

async function sub(
  args: string[],
  env: Record<string, string> = {},
): Promise<Record<string, unknown> | null> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-env",
      "--allow-write",
      "--allow-ffi",
      "--allow-sys",
      fileURLToPath(import.meta.url),
      ...args,
    ],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const line = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "";
  if (out.code !== 0) {
    console.error(
      `  ${args.join(" ")} failed: ${
        new TextDecoder().decode(out.stderr).trim().split("\n").at(-1)
      }`,
    );
    return null;
  }
  return JSON.parse(line);
}

/**
 * glibc malloc settings for the reference: keep freed memory instead of returning it to the
 * system. PyTorch allocates each op's output afresh, and glibc maps and unmaps large blocks,
 * so every op touches new pages; on a VM where a page fault is slow that alone made the
 * reference 3.2x slower (measured: 1.11 -> 0.34 s an iteration on a 2-core EPYC VM whose
 * faults cost ~15 us). Ours is unchanged by them (0.298 / 0.299 s; it reuses its buffers), so
 * they only make the reference faster: the ratios printed are the harder ones.
 */
export const TORCH_MALLOC = {
  MALLOC_MMAP_THRESHOLD_: "4294967296",
  MALLOC_TRIM_THRESHOLD_: "4294967296",
  MALLOC_TOP_PAD_: "268435456",
};

async function torch(
  variant: string,
  iters: number,
  { warmup = 2, flush = false }: { warmup?: number; flush?: boolean } = {},
): Promise<number[] | null> {
  try {
    await Deno.stat(TORCH_REF);
  } catch {
    return null;
  }
  const mnist = join(npmDataDir(), "train-images-idx3-ubyte");
  const refArgs = [
    "--variant",
    variant,
    "--iters",
    String(iters),
    "--warmup",
    String(warmup),
    "--mnist",
    mnist,
  ];
  // the reference has no flag for it: set it, then run the script as __main__
  const args = flush
    ? [
      "-c",
      "import sys, runpy, torch; torch.set_flush_denormal(True); sys.argv = sys.argv[1:]; " +
      "runpy.run_path(sys.argv[0], run_name='__main__')",
      TORCH_REF,
      ...refArgs,
    ]
    : [TORCH_REF, ...refArgs];
  try {
    const out = await new Deno.Command("/usr/bin/python3", {
      args,
      env: TORCH_MALLOC,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (out.code !== 0) return null;
    const r = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
    return r.times as number[];
  } catch {
    return null;
  }
}

const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Mean of `t` over iterations `from`..`to` (1-based, inclusive). */
const windowMean = (t: number[], from: number, to: number) => {
  const w = t.slice(from - 1, to);
  return w.reduce((a, b) => a + b, 0) / w.length;
};

/** The windows a loop is reported over: early, steady state (last 50) and the whole run. */
function loopWindows(n: number): { name: string; from: number; to: number }[] {
  return [
    { name: `early (1-${Math.min(10, n)})`, from: 1, to: Math.min(10, n) },
    { name: `steady (${Math.max(1, n - 49)}-${n})`, from: Math.max(1, n - 49), to: n },
    { name: `whole (1-${n})`, from: 1, to: n },
  ];
}

/** The command line (workers included: the bench runs each engine in a subprocess of itself). */
function parseBenchArgs() {
  return parseArgs({
    args: Deno.args,
    options: {
      worker: { type: "string" },
      sgemm: { type: "boolean", default: false },
      loop: { type: "string" },
      "no-ftz": { type: "boolean", default: false },
      variant: { type: "string", default: "keras" },
      iters: { type: "string", default: "3" },
      warmup: { type: "string", default: "1" },
      rounds: { type: "string", default: "3" },
      "stock-iters": { type: "string", default: "1" },
      "loop-iters": { type: "string", default: "150" },
      "loop-pairs": { type: "string", default: "1" },
      stage: { type: "boolean", default: false },
      backends: { type: "string", default: CANDIDATES.map((c) => c.label).join(",") },
      out: { type: "string", default: join(ROOT, "results", "bench", "bench.json") },
      "no-torch": { type: "boolean", default: false },
      profile: { type: "string" },
      "adam-traffic": { type: "boolean", default: false },
      "profile-iters": { type: "string", default: "20" },
      sweep: { type: "boolean", default: false },
      ui: { type: "boolean", default: false },
      "ui-sizes": { type: "string", default: "1000,10000,100000" },
      live: { type: "boolean", default: false },
      "measure-rows": { type: "string" },
      backend: { type: "string" },
      "gpu-loop": { type: "string" },
      "gpu-backend": { type: "string", default: "webgpu" },
      "gpu-tiny": { type: "boolean", default: false },
      "gpu-profile": { type: "boolean", default: false },
      "gpu-iters": { type: "string", default: "10" },
    },
  }).values;
}

type BenchArgs = ReturnType<typeof parseBenchArgs>;
const TORCH = "PyTorch CPU (reference)";

/**
 * One lecture iteration's steps per engine and variant, `rounds` times, interleaved with the
 * PyTorch reference so that every ratio is measured side by side; engine|variant -> seconds.
 */
async function stepTimes(values: BenchArgs, rounds: number): Promise<Map<string, number[]>> {
  const wanted = CANDIDATES.filter((c) =>
    values.backends.split(",").some((b) => c.label.startsWith(b.trim()))
  );
  const times = new Map<string, number[]>();
  const add = (k: string, t: number[]) => times.set(k, [...(times.get(k) ?? []), ...t]);
  for (let r = 0; r < rounds; r++) {
    console.log(`round ${r + 1}/${rounds}`);
    for (const variant of ["keras", "large"]) {
      for (const c of wanted) {
        const stock = c.backend === "cpu" || c.backend === "wasm";
        if (stock && r > 0) continue; // the stock engines take 10-20 s an iteration: once is enough
        const res = await sub([
          "--worker",
          c.backend,
          "--variant",
          variant,
          "--iters",
          stock ? values["stock-iters"] : values.iters,
          "--warmup",
          stock ? "0" : values.warmup,
        ], c.env);
        if (res) add(`${c.label}|${variant}`, res.times as number[]);
      }
      if (!values["no-torch"]) {
        const t = await torch(variant, Number(values.iters));
        if (t) add(`${TORCH}|${variant}`, t);
      }
    }
  }
  return times;
}

/** The step table: median seconds, GFLOP/s, share of sgemm's rate and PyTorch/ours. */
function stepTable(
  times: Map<string, number[]>,
  flops: number,
  sgemmGflops: number | null,
): Record<string, unknown>[] {
  const torchMed = (v: string) =>
    times.has(`${TORCH}|${v}`) ? median(times.get(`${TORCH}|${v}`)!) : null;
  if (times.size) {
    console.log(
      `\n${"engine".padEnd(26)}${"variant".padEnd(8)}${"s/iter".padStart(9)}${
        "GFLOP/s".padStart(9)
      }${"of sgemm".padStart(10)}${"torch/ours".padStart(12)}  n`,
    );
  }
  const rows: Record<string, unknown>[] = [];
  for (const [key, t] of times) {
    const [label, variant] = key.split("|");
    const med = median(t);
    const gflops = flops / med / 1e9;
    const frac = sgemmGflops ? gflops / sgemmGflops : null;
    const tm = torchMed(variant);
    const ratio = tm !== null && label !== TORCH ? tm / med : null;
    rows.push({
      engine: label,
      variant,
      medianSeconds: med,
      gflops,
      fractionOfSgemm: frac,
      torchOverOurs: ratio,
      samples: t,
    });
    console.log(
      `${label.padEnd(26)}${variant.padEnd(8)}${med.toFixed(3).padStart(9)}${
        gflops.toFixed(1).padStart(9)
      }${frac === null ? "".padStart(10) : `${(100 * frac).toFixed(0)}%`.padStart(10)}${
        ratio === null ? "".padStart(12) : ratio.toFixed(2).padStart(12)
      }  ${t.length}`,
    );
  }
  if (times.size && torchMed("keras") === null) {
    console.log("(no PyTorch reference: apt-get install -y python3-torch for the ratio column)");
  }
  return rows;
}

/** The loop table's rows for ours and the reference. */
const OURS = "fast-cpu (FTZ on, the default)";
const TORCH_DEFAULTS = "PyTorch CPU (defaults)", TORCH_FLUSH = "PyTorch CPU (flush denormals)";

/** One comparable set: the loop times by row label, and the sgemm rate taken just before. */
interface LoopSet {
  times: Record<string, number[]>;
  sgemmGflops: number | null;
}

/**
 * This machine's sgemm rate, then ours, then PyTorch with its defaults and flushing, back to
 * back: one comparable set. The rate is taken again for each set because the machine drifts
 * (150-344 GFLOP/s measured within a day), and the bound it gives is only fair beside the
 * loop it is compared with.
 */
async function loopPair(values: BenchArgs, loopIters: number): Promise<LoopSet> {
  const times: Record<string, number[]> = {};
  const sg = await sub(["--sgemm"]);
  const ours = await sub(["--loop", String(loopIters)]);
  if (ours) times[OURS] = ours.times as number[];
  if (!values["no-torch"]) {
    const t = await torch("keras", loopIters, { warmup: 0 });
    if (t) times[TORCH_DEFAULTS] = t;
    const tFlush = await torch("keras", loopIters, { warmup: 0, flush: true });
    if (tFlush) times[TORCH_FLUSH] = tFlush;
  }
  return { times, sgemmGflops: typeof sg?.gflops === "number" ? sg.gflops : null };
}

/**
 * One set's torch/ours over the steady window, for each PyTorch mode it has, and ours as a
 * multiple of the sgemm bound (`flops` at the rate measured just before it).
 */
function pairRatios({ times, sgemmGflops: sgemm }: LoopSet, loopIters: number, flops: number) {
  const steady = loopWindows(loopIters)[1];
  const mean = (t: number[] | undefined) => t ? windowMean(t, steady.from, steady.to) : null;
  const o = mean(times[OURS]);
  const d = mean(times[TORCH_DEFAULTS]), f = mean(times[TORCH_FLUSH]);
  return {
    ours: o,
    torch: d,
    torchFlush: f,
    vsDefaults: o && d ? d / o : null,
    vsFlush: o && f ? f / o : null,
    sgemmGflops: sgemm,
    oursOverBound: o && sgemm ? o / sgemmBound(flops, sgemm) : null,
  };
}

/**
 * The whole adversarial loop, ours against PyTorch with and without denormals flushed, run
 * back to back (this machine's speed drifts by tens of percent over minutes, so a ratio is
 * only fair between neighbouring runs); `--loop-pairs` repeats the set and prints each set's
 * ratios and their median. Then the variants of ours.
 */
async function loopTimes(
  values: BenchArgs,
  loopIters: number,
  flops: number,
): Promise<{ loops: Record<string, number[]>; pairs: ReturnType<typeof pairRatios>[] }> {
  console.log(
    `\nthe adversarial loop, ${loopIters} iterations from a fresh initialisation (ours: the real stage's loop, D measurements included)`,
  );
  const nPairs = Number(values["loop-pairs"]);
  const sets: LoopSet[] = [];
  for (let k = 0; k < nPairs; k++) sets.push(await loopPair(values, loopIters));
  const loops = { ...sets[0].times };
  const pairs = sets.map((set) => pairRatios(set, loopIters, flops));
  // Adam on the main thread alone (GAN_ADAM_THREADS=1): what its worker thread buys
  const oneThread = await sub(["--loop", String(loopIters)], { GAN_ADAM_THREADS: "1" });
  if (oneThread) loops["fast-cpu, Adam on 1 thread"] = oneThread.times as number[];
  // what watching costs: the same loop writing its live rows (the stage always does)
  const live = await sub(["--loop", String(loopIters), "--live"]);
  if (live) loops["fast-cpu + live rows"] = live.times as number[];
  // the D figures on 100 of the 500 rows (adversarial.measureRows): the same training
  const fewer = await sub(["--loop", String(loopIters), "--measure-rows", "100"]);
  if (fewer) loops["fast-cpu, D on 100 rows"] = fewer.times as number[];
  const windows = loopWindows(loopIters);
  if (nPairs > 1) console.log(`(the table: the first of ${nPairs} sets of ours and PyTorch)`);
  console.log(
    `${"engine".padEnd(32)}${windows.map((w) => w.name.padStart(18)).join("")}${
      "total s".padStart(10)
    }`,
  );
  for (const [label, t] of Object.entries(loops)) {
    console.log(
      `${label.padEnd(32)}${
        windows.map((w) => windowMean(t, w.from, w.to).toFixed(3).padStart(18)).join("")
      }${t.reduce((a, b) => a + b, 0).toFixed(1).padStart(10)}`,
    );
  }
  const o = loops[OURS];
  // a variant's time over the default's, window by window
  const ratioLine = (label: string, variant: number[] | undefined) => {
    if (!o || !variant) return;
    console.log(
      `${label.padEnd(32)}${
        windows.map((w) =>
          (windowMean(variant, w.from, w.to) / windowMean(o, w.from, w.to)).toFixed(3).padStart(18)
        ).join("")
      }`,
    );
  };
  ratioLine("Adam 1 thread / 2", loops["fast-cpu, Adam on 1 thread"]);
  ratioLine("live rows / without", loops["fast-cpu + live rows"]);
  ratioLine("D on 100 rows / 500", loops["fast-cpu, D on 100 rows"]);
  for (const ref of [TORCH_DEFAULTS, TORCH_FLUSH]) {
    const t = loops[ref];
    if (!o || !t) continue;
    console.log(
      `${`torch/ours vs ${ref.slice(12)}`.padEnd(32)}${
        windows.map((w) =>
          (windowMean(t, w.from, w.to) / windowMean(o, w.from, w.to)).toFixed(2).padStart(18)
        ).join("")
      }`,
    );
  }
  const f = (x: number | null, d = 3) => x === null ? "-" : x.toFixed(d);
  console.log(
    `each set, ${
      windows[1].name
    }: ours, PyTorch defaults / flushing, torch/ours; sgemm rate just before, ours / its bound`,
  );
  pairs.forEach((p, k) =>
    console.log(
      `  set ${k + 1}: ${f(p.ours)} s, ${f(p.torch)} / ${f(p.torchFlush)} s, ${
        f(p.vsDefaults, 2)
      } / ${f(p.vsFlush, 2)}; ${f(p.sgemmGflops, 0)} GFLOP/s, ${f(p.oursOverBound, 2)}x`,
    )
  );
  const med = (xs: (number | null)[]) => {
    const v = xs.filter((x): x is number => x !== null);
    return v.length ? median(v) : null;
  };
  if (nPairs > 1) {
    console.log(
      `  median of ${nPairs} sets, torch/ours: ${f(med(pairs.map((p) => p.vsDefaults)), 2)} / ${
        f(med(pairs.map((p) => p.vsFlush)), 2)
      }; ours / the sgemm bound: ${f(med(pairs.map((p) => p.oursOverBound)), 2)}x`,
    );
  }
  return { loops, pairs };
}

/** The lecture's layer widths of both nets, noise and image sizes included. */
function lectureWidths(cfg: Awaited<ReturnType<typeof resolveConfig>>) {
  return {
    g: [10, ...cfg.model.counterfeiter.hidden, 784],
    d: [784, ...cfg.model.police.hidden, 1],
  };
}

/**
 * Adam's traffic against this machine's bandwidth: the rate inside the loop (the profile's
 * Adam phase, two threads by default, then one thread as a second profile), the same steps
 * alone on one and two threads, and a plain copy. Printed; returned for the JSON record.
 */
async function adamTraffic(values: BenchArgs, bytes: number, inLoop: number | null) {
  const one = await sub(["--profile", values["profile-iters"]], { GAN_ADAM_THREADS: "1" });
  const inLoopOne = (one?.phases as PhaseTimes)?.adam ?? null;
  const alone = await sub(["--adam-traffic"]);
  const gbs = (s: number | null) => (s ? `${(bytes / s / 1e9).toFixed(1)} GB/s` : "-");
  const rate = (x: unknown) => (typeof x === "number" ? `${x.toFixed(1)} GB/s` : "-");
  console.log(
    `\nAdam's traffic: ${
      (bytes / 1e9).toFixed(2)
    } GB an iteration (p, m, v, g read; p, m, v written)`,
  );
  console.log(
    `  in the loop: ${inLoop?.toFixed(3) ?? "-"} s = ${gbs(inLoop)} (threads as set);` +
      ` ${inLoopOne?.toFixed(3) ?? "-"} s = ${gbs(inLoopOne)} with GAN_ADAM_THREADS=1`,
  );
  console.log(
    `  the same steps alone: ${rate(alone?.oneThread)} on one thread, ${
      rate(alone?.twoThreads)
    } on two; a plain copy on one thread: ${rate(alone?.copy)}`,
  );
  return {
    bytesPerIteration: bytes,
    inLoopSeconds: inLoop,
    inLoopOneThreadSeconds: inLoopOne,
    alone,
  };
}

/** The phases' names as the distance section prints them. */
const PHASE_NAMES: Record<keyof PhaseTimes, string> = {
  minibatchSteps: "minibatch-32 steps (fwd+bwd)",
  dMeasurements: "D measurements (5 x 500 rows)",
  adam: "Adam updates",
  generate: "generating fakes",
  other: "noise, rows, copies",
};

/** Seconds `flops` take at this machine's sgemm rate: the bound an iteration is measured against. */
function sgemmBound(flops: number, sgemmGflops: number): number {
  return flops / (sgemmGflops * 1e9);
}

/**
 * How far a lecture iteration is from the sgemm bound (its training matmuls at this machine's
 * sgemm rate), and where the rest goes; printed, and returned for the JSON record.
 */
function distanceToLimit(flops: number, sgemmGflops: number | null, phases: PhaseTimes | null) {
  if (!sgemmGflops || !phases) return null;
  const bound = sgemmBound(flops, sgemmGflops);
  const total = Object.values(phases).reduce((a, b) => a + b, 0);
  console.log(
    `\ndistance to the limit: an iteration's fakes and fits are ${
      (flops / 1e9).toFixed(1)
    } GFLOP;` +
      ` at this machine's sgemm rate (${sgemmGflops.toFixed(0)} GFLOP/s) that is ${
        bound.toFixed(3)
      } s`,
  );
  console.log(
    `  measured (the loop's steps timed by phase, one process): ${total.toFixed(3)} s/iteration = ${
      (total / bound).toFixed(2)
    }x the sgemm bound`,
  );
  const sorted = (Object.keys(phases) as (keyof PhaseTimes)[]).sort((a, b) =>
    phases[b] - phases[a]
  );
  for (const k of sorted) {
    console.log(
      `  ${PHASE_NAMES[k].padEnd(32)}${phases[k].toFixed(3).padStart(8)} s ${
        (100 * phases[k] / total).toFixed(0).padStart(4)
      }%`,
    );
  }
  console.log(`  largest remaining cost: ${PHASE_NAMES[sorted[0]]}`);
  return { sgemmBoundSeconds: bound, measuredSeconds: total, ratio: total / bound, phases };
}

/** `--sweep`: the sweep throughput table, with the machine named. */
async function sweepMain(values: BenchArgs) {
  const fast = await selectBackend("fast-cpu");
  console.log(`CPU: ${cpuModel()}; fast-cpu: ${fast.runtime.facts.backend}`);
  for (const n of fast.notes) console.log(`  note: ${n}`);
  const results = await Deno.makeTempDir({ prefix: "gan-sweep-bench-" });
  try {
    const rows = await sweepBench(ROOT, results);
    const out = join(dirname(values.out), "sweep.json");
    await Deno.mkdir(dirname(out), { recursive: true });
    const record = {
      date: new Date().toISOString(),
      cpu: cpuModel(),
      backend: fast.runtime.facts.backend,
      rows,
    };
    await Deno.writeTextFile(out, JSON.stringify(record, null, 2) + "\n");
    console.log(out);
  } finally {
    await Deno.remove(results, { recursive: true }).catch(() => {});
  }
}

/** `--ui`: the dashboard's first paint and live delay, with the machine named. */
async function uiMain(values: BenchArgs) {
  console.log(`CPU: ${cpuModel()}`);
  const sizes = values["ui-sizes"].split(",").map(Number);
  const record = {
    date: new Date().toISOString(),
    cpu: cpuModel(),
    ...(await uiBench(ROOT, sizes)),
  };
  const out = join(dirname(values.out), "ui.json");
  await Deno.mkdir(dirname(out), { recursive: true });
  await Deno.writeTextFile(out, JSON.stringify(record, null, 2) + "\n");
  console.log(out);
}

async function main() {
  const values = parseBenchArgs();
  const nPairs = Number(values["loop-pairs"]);
  if (!Number.isInteger(nPairs) || nPairs < 1) {
    console.error(`bench: --loop-pairs takes a whole number >= 1 (got "${values["loop-pairs"]}")`);
    Deno.exit(2);
  }
  if (values.sgemm) return sgemmWorker();
  if (values.profile) return await profileWorker(Number(values.profile));
  if (values["adam-traffic"]) {
    const cfg = await resolveConfig(join(ROOT, "configs/baseline.json"));
    const { g, d } = lectureWidths(cfg);
    return await adamTrafficWorker(g, d, cfg.adversarial.batchSize, cfg.adversarial.fitBatchSize);
  }
  if (values.sweep) return await sweepMain(values);
  if (values.ui) return await uiMain(values);
  if (values["gpu-loop"]) {
    const backend = values["gpu-backend"] === "fast-cpu" ? "fast-cpu" : "webgpu";
    return await gpuLoopWorker(
      ROOT,
      backend,
      Number(values["gpu-loop"]),
      2,
      values["gpu-tiny"],
      mnistTrain,
      values["gpu-profile"],
    );
  }
  if (values.backend === "webgpu") {
    const record = await gpuMain(Number(values["gpu-iters"]), (args) => sub(args));
    const out = join(dirname(values.out), "webgpu.json");
    await Deno.mkdir(dirname(out), { recursive: true });
    await Deno.writeTextFile(out, JSON.stringify(record, null, 2) + "\n");
    console.log(out);
    return;
  }
  if (values.backend !== undefined) {
    throw new Error(
      `bench --backend takes webgpu (the CPU engines run by default); got ${values.backend}`,
    );
  }
  if (values.loop) {
    return await loopWorker(
      Number(values.loop),
      !values["no-ftz"],
      values.live,
      values["measure-rows"],
    );
  }
  if (values.worker) {
    const { worker: backend, variant, iters, warmup } = values;
    return await worker(backend as BackendName, variant, Number(iters), Number(warmup));
  }
  // --stage: the headline, the whole 500-iteration loop against the reference's 500
  const loopIters = values.stage ? 500 : Number(values["loop-iters"]);
  const rounds = values.stage ? 0 : Number(values.rounds);
  const cfg = await resolveConfig(join(ROOT, "configs/baseline.json"));
  const widths = lectureWidths(cfg);
  const flops = iterationFlops(widths.g, widths.d);
  const sg = await sub(["--sgemm"]);
  const fast = await selectBackend("fast-cpu");
  const machine = {
    cpu: cpuModel(),
    backend: fast.runtime.facts.backend,
    denormals: fast.runtime.facts.denormals,
    notes: fast.notes,
  };
  console.log(`CPU: ${machine.cpu}`);
  console.log(`fast-cpu: ${machine.backend}, denormals ${machine.denormals}`);
  for (const n of machine.notes) console.log(`  note: ${n}`);
  console.log(`sgemm 1024^3: ${(sg?.gflops as number)?.toFixed(1)} GFLOP/s via ${sg?.source}`);
  if (!values["no-torch"]) {
    console.log("PyTorch reference: glibc malloc keeps freed memory (TORCH_MALLOC in bench.ts)");
  }
  const profile = await sub(["--profile", values["profile-iters"]]);
  const limit = distanceToLimit(
    flops,
    (sg?.gflops as number) ?? null,
    (profile?.phases as PhaseTimes) ?? null,
  );
  const adam = await adamTraffic(
    values,
    adamBytesPerIteration(
      widths.g,
      widths.d,
      cfg.adversarial.batchSize,
      cfg.adversarial.fitBatchSize,
    ),
    (profile?.phases as PhaseTimes)?.adam ?? null,
  );
  const rows = stepTable(await stepTimes(values, rounds), flops, (sg?.gflops as number) ?? null);
  const { loops, pairs } = loopIters > 0
    ? await loopTimes(values, loopIters, flops)
    : { loops: {}, pairs: [] };
  const report = {
    date: new Date().toISOString(),
    deno: Deno.version.deno,
    tfjs: tf.version_core,
    machine,
    flopsPerIteration: flops,
    sgemm: sg,
    limit,
    adam,
    rows,
    loop: { iterations: loopIters, seconds: loops, pairs },
  };
  await Deno.mkdir(dirname(values.out), { recursive: true });
  await Deno.writeTextFile(values.out, JSON.stringify(report, null, 2) + "\n");
  console.log(`\n${values.out}`);
}

if (import.meta.main) await main();
