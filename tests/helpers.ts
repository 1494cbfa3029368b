/** Shared test helpers: tiny generated datasets, configs, and running the CLI. */
import { join } from "node:path";
import { encodeIdx } from "../stages/formats/idx.ts";
import { Rng } from "../pipeline/rng.ts";
import { resolveConfig } from "../stages/schema.ts";
import type { Config } from "../stages/schema.ts";
import { RUN_PERMISSIONS } from "../pipeline/sweep/point.ts";
import { selectBackend } from "../stages/backends/mod.ts";
import { adversarialIterations } from "../stages/training/loop.ts";
import { historyNumbers, type HistoryRow } from "../stages/vocabulary.ts";
import { makeGan } from "../stages/training/gan.ts";
import type { PathKind } from "../stages/training/path.ts";
import { initNets, variablesOf } from "../stages/training/nets.ts";
import { streamsFor } from "../stages/training/streams.ts";

export const ROOT = new URL("..", import.meta.url).pathname;

/** Options for {@link makeIdxSet}. */
export interface IdxSetOptions {
  train?: number;
  test?: number;
  side?: number;
  gzip?: boolean;
  seed?: number;
}

/** A tiny MNIST-shaped dataset: digit d lights the pixels of row d % side. */
export function idxSet({ train = 120, test = 40, side = 6, seed = 3 }: IdxSetOptions = {}) {
  const rng = new Rng(seed);
  const make = (n: number) => {
    const labels = Uint8Array.from({ length: n }, () => rng.int(10));
    const images = new Uint8Array(n * side * side);
    labels.forEach((d, i) => {
      for (let c = 0; c < side; c++) {
        images[i * side * side + (d % side) * side + c] = 200 + rng.int(56);
      }
    });
    return { images: encodeIdx(images, [n, side, side]), labels: encodeIdx(labels, [n]) };
  };
  const tr = make(train), te = make(test);
  return {
    trainImages: tr.images,
    trainLabels: tr.labels,
    testImages: te.images,
    testLabels: te.labels,
  };
}

/** Gzips bytes. */
export async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const s = new Blob([bytes as BlobPart]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(s).arrayBuffer());
}

/** Writes a tiny dataset to files in `dir`; returns their paths by role. */
export async function writeIdxFiles(dir: string, opts: IdxSetOptions = {}) {
  const set = idxSet(opts);
  const paths: Record<string, string> = {};
  for (const [role, bytes] of Object.entries(set)) {
    const p = join(dir, `${role}.idx${opts.gzip ? ".gz" : ""}`);
    await Deno.writeFile(p, opts.gzip ? await gzip(bytes) : bytes);
    paths[role] = p;
  }
  return paths as Record<keyof typeof set, string>;
}

/** A tiny config object over local files: small nets, small batches, few iterations. */
export function tinyConfig(files: Record<string, string>, extra: Record<string, unknown> = {}) {
  return {
    seed: 5,
    data: { source: "file", files },
    model: {
      noiseDim: 3,
      counterfeiter: { hidden: [8] },
      police: { hidden: [8], dropout: 0.3 },
    },
    warmup: { batchSize: 16, fitBatchSize: 8 },
    adversarial: { iterations: 4, batchSize: 16, fitBatchSize: 8, checkpointEvery: 2 },
    backend: "cpu",
    // tiny images (6 pixels a side): the MLP evaluator
    evaluator: { kind: "mlp" },
    ...extra,
  };
}

/** Writes a config file and returns its path. */
export async function writeConfig(dir: string, name: string, cfg: unknown): Promise<string> {
  const p = join(dir, `${name}.json`);
  await Deno.writeTextFile(p, JSON.stringify(cfg, null, 2));
  return p;
}

/** Resolves a config object written to a temp file. */
export async function configOf(
  dir: string,
  obj: unknown,
  overrides: string[] = [],
): Promise<Config> {
  return await resolveConfig(await writeConfig(dir, "cfg", obj), overrides);
}

/**
 * The entry the CLI tests drive: the source, or a bundle named by GAN_TEST_APP (the device
 * machine lent for GPU checks has no npm registry, so the app travels there bundled).
 */
const APP = Deno.env.get("GAN_TEST_APP") ?? join(ROOT, "stages/app.ts");

/** Runs the CLI in a subprocess. */
export async function cli(args: string[], opts: { env?: Record<string, string> } = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...RUN_PERMISSIONS, APP, ...args],
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0", ...opts.env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Runs `sweep` through the CLI in a subprocess (every permission: sweeps start points). */
export async function sweepCli(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", APP, "sweep", ...args],
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

/** A tiny config over generated files in a new folder, and where its results go. */
export async function tinyRun(extra: Record<string, unknown> = {}) {
  const dir = await Deno.makeTempDir();
  const files = await writeIdxFiles(dir);
  const cfg = await writeConfig(dir, "tiny", tinyConfig(files, extra));
  return { dir, cfg, files, results: join(dir, "results") };
}

/** Starts the CLI in the background (for kill tests). */
export function cliSpawn(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", APP, ...args],
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Asserts that `fn` rejects with an instance of `cls` whose message contains `text`. */
export async function rejectsWith(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  cls: new (...a: any[]) => Error,
  text: string | RegExp,
): Promise<Error> {
  let caught: unknown = null;
  try {
    await fn();
  } catch (e) {
    caught = e;
  }
  if (!(caught instanceof cls)) throw new Error(`expected ${cls.name}, got ${caught}`);
  const ok = typeof text === "string" ? caught.message.includes(text) : text.test(caught.message);
  if (!ok) throw new Error(`message ${JSON.stringify(caught.message)} does not match ${text}`);
  return caught;
}

/** A loopback server with a handler; returns its base URL and a closer. */
export function serve(handler: (req: Request, n: number) => Response | Promise<Response>) {
  let n = 0;
  const ac = new AbortController();
  const server = Deno.serve(
    {
      hostname: "127.0.0.1",
      port: 0,
      signal: ac.signal,
      onListen: () => {},
      onError: () => new Response("error", { status: 500 }),
    },
    (req) => handler(req, ++n),
  );
  const base = `http://127.0.0.1:${server.addr.port}`;
  return { base, close: async () => (ac.abort(), await server.finished), count: () => n };
}

let pythonWithNumpy: string | null = null;

/**
 * A Python interpreter that has NumPy (the tests check our `.npy` files with `numpy.load`):
 * `python3` on the PATH, else Debian's `/usr/bin/python3`. Fails, naming the fix, when none has.
 */
export async function numpyPython(): Promise<string> {
  if (pythonWithNumpy) return pythonWithNumpy;
  for (const py of ["python3", "/usr/bin/python3"]) {
    try {
      const out = await new Deno.Command(py, {
        args: ["-c", "import numpy"],
        stdout: "null",
        stderr: "null",
      }).output();
      if (out.success) return (pythonWithNumpy = py);
    } catch { /* not installed */ }
  }
  throw new Error("no python3 with numpy found: apt-get install python3-numpy");
}

/**
 * Runs `iterations` of the adversarial loop on fast-cpu from a seeded init over `rows`
 * random [0,1] rows, on the training path `path` (`auto`: the one makeGan picks; `webgpu`
 * selects the webgpu backend, its host work on fast-cpu); returns
 * the history's numbers, the final weights of both nets and the path that ran.
 */
export async function loopRun(
  cfg: Config,
  path: "auto" | PathKind,
  iterations: number,
  dim: number,
  rows = 300,
): Promise<{ history: number[][]; weights: number[][]; kind: PathKind }> {
  await selectBackend(path === "webgpu" ? "webgpu" : "fast-cpu");
  const { g, d } = initNets(cfg, dim, new Rng(cfg.seed, 1), new Rng(cfg.seed, 2));
  const gan = makeGan(cfg, g, d, streamsFor(cfg, "adversarial"), { path });
  const train = new Rng(7).uniforms(rows * dim);
  const history: HistoryRow[] = [];
  await adversarialIterations(gan, cfg.adversarial, { train, dim, to: iterations, history });
  await gan.path.sync();
  gan.path.dispose();
  const weights = [...variablesOf(g), ...variablesOf(d)].map((v) =>
    Array.from(v.dataSync() as Float32Array)
  );
  return { history: historyNumbers(history), weights, kind: gan.path.kind };
}

/** Runs of `cfg` up to preprocess, one per seed (cheap: no training); their run names. */
export async function seedRuns(cfg: string, results: string, seeds: number[]): Promise<string[]> {
  const names: string[] = [];
  for (const seed of seeds) {
    const r = await cli([
      "run",
      cfg,
      `seed=${seed}`,
      "--results",
      results,
      "--until",
      "preprocess",
    ]);
    if (r.code !== 0) throw new Error(r.stderr);
    names.push(r.stdout.trim().split("/").at(-1)!);
  }
  return names;
}
