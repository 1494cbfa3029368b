/**
 * `deno task ui [--results DIR] [--port N] [--host H]`: a local, read-only dashboard over a
 * results folder (Deno.serve): the runs (sortable, filterable, selectable for comparison), one
 * run with its curves growing while it trains, two or more runs overlaid, and a sweep's points
 * with their live status and knobs against the rank metric.
 *
 * Safe by default: it listens on 127.0.0.1; it answers GET and HEAD only; it serves no file
 * outside the results folder (a path that leaves it, through `..` or a link, is refused); and
 * it refuses a request whose Host header is not an address it serves, so a web page elsewhere
 * cannot reach it through DNS rebinding (as Jupyter does).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { allowedHosts } from "./server.ts";
 * const ok = allowedHosts("127.0.0.1", 8470, []);
 * assert(ok.has("127.0.0.1:8470") && ok.has("localhost:8470") && !ok.has("evil.example:8470"));
 * ```
 */
import { extname, resolve, sep } from "node:path";
import type { App } from "../../pipeline/app.ts";
import { parseCommand } from "../../pipeline/args.ts";
import { UsageError } from "../../pipeline/errors.ts";
import { damagedFile } from "../../pipeline/store.ts";
import { DamagedEntry, runDetail, runsList, runsViewOf, sweepDetail, sweepsList } from "./data.ts";
import { pageHtml } from "./pages.ts";

const USAGE = `usage: deno task ui [--results DIR] [--port N] [--host H]
  a local dashboard over a results folder: runs, live training curves, comparisons, sweeps
  --results DIR   the results folder (default: results)
  --port N        the port (default 8470; 0 picks a free one)
  --host H        the address to listen on (default 127.0.0.1: this machine only)
  --allow-host H  one more Host header to accept (repeatable), e.g. a name behind a proxy`;

/**
 * The browser builds the pages load, served from the installed packages (the project's
 * node_modules: deno.json sets nodeModulesDir; their `exports` do not name these files).
 */
const VENDOR: Record<string, string> = {
  "vega.min.js": "vega/build/vega.min.js",
  "vega-lite.min.js": "vega-lite/build/vega-lite.min.js",
  "vega-embed.min.js": "vega-embed/build/vega-embed.min.js",
};

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".png": "image/png",
  ".svg": "image/svg+xml",
  ".json": "application/json",
  ".js": "text/javascript; charset=utf-8",
  ".log": "text/plain; charset=utf-8",
  ".jsonl": "text/plain; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
};

const LOOPBACK = ["127.0.0.1", "localhost", "::1"];
const ANY = ["0.0.0.0", "::"];

/**
 * The Host headers a server on `host:port` answers: loopback names for a loopback address;
 * for every interface (`0.0.0.0`, `::`), loopback and each of `interfaces` (this machine's
 * addresses) too, so the page works at the addresses it is reached by.
 */
export function allowedHosts(
  host: string,
  port: number,
  extra: string[],
  interfaces: string[] = [],
): Set<string> {
  const names = new Set([host, ...extra]);
  if (LOOPBACK.includes(host) || ANY.includes(host)) {
    for (const n of ["127.0.0.1", "localhost", "[::1]"]) names.add(n);
  }
  if (ANY.includes(host)) {
    for (const a of interfaces) names.add(a.includes(":") ? `[${a}]` : a);
  }
  return new Set([...names].flatMap((n) => [`${n}:${port}`, ...(port === 80 ? [n] : [])]));
}

/** This machine's interface addresses and name (what a wildcard listener is reached by). */
function machineAddresses(): string[] {
  const out: string[] = [];
  try {
    out.push(...Deno.networkInterfaces().map((i) => i.address));
  } catch { /* no permission: loopback and --allow-host only */ }
  try {
    out.push(Deno.hostname());
  } catch { /* likewise */ }
  return out;
}

const text = (status: number, body: string) =>
  new Response(body + "\n", { status, headers: { "content-type": "text/plain; charset=utf-8" } });
const json = (v: unknown, status = 200) =>
  v === null ? text(404, "not found") : new Response(JSON.stringify(v), {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store" },
  });

/** A file under the results folder, or null when the path leaves it (links resolved first). */
export async function resolveInside(root: string, rel: string): Promise<string | null> {
  if (rel.includes("\0")) return null;
  const realRoot = await Deno.realPath(root);
  let real: string;
  try {
    real = await Deno.realPath(resolve(realRoot, rel));
  } catch {
    return null;
  }
  return real.startsWith(realRoot + sep) ? real : null;
}

/** The request handler over `results` (exported for the tests). */
export function handler(app: App, results: string, hosts: Set<string>) {
  const client = Deno.readTextFile(new URL("./client.js", import.meta.url));
  return async (req: Request): Promise<Response> => {
    const host = req.headers.get("host") ?? "";
    if (!hosts.has(host)) {
      return text(403, `refused: Host ${host || "(none)"} is not an address this server serves`);
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      return new Response("read-only: GET and HEAD only\n", {
        status: 405,
        headers: { allow: "GET, HEAD" },
      });
    }
    const url = new URL(req.url);
    let path: string;
    try {
      path = decodeURIComponent(url.pathname);
    } catch {
      return text(400, "bad path");
    }
    const [, first = "", ...rest] = path.split("/");
    const arg = rest.join("/");
    if (path === "/") return html("runs", "", "Runs");
    if (first === "run" && arg) return html("run", arg, arg);
    if (first === "compare") return html("compare", url.searchParams.get("runs") ?? "", "Compare");
    if (first === "sweep" && arg) return html("sweep", arg, `Sweep ${arg}`);
    if (path === "/client.js") {
      return new Response(await client, { headers: { "content-type": TYPES[".js"] } });
    }
    if (first === "vendor" && VENDOR[arg]) {
      const file = new URL(`../../node_modules/${VENDOR[arg]}`, import.meta.url);
      return new Response(await Deno.readFile(file), {
        headers: { "content-type": TYPES[".js"], "cache-control": "max-age=3600" },
      });
    }
    try {
      const api = await apiAnswer(app, results, path, first, rest, url);
      if (api) return api;
    } catch (e) {
      if (e instanceof DamagedEntry) return text(409, e.message);
      throw e;
    }
    return await fileAnswer(results, first, arg);
  };
}

/** The JSON API's answer, or null for a path it does not serve. */
async function apiAnswer(
  app: App,
  results: string,
  path: string,
  first: string,
  rest: string[],
  url: URL,
): Promise<Response | null> {
  if (path === "/api/runs") {
    const list = await runsList(app, results, runsViewOf(url.searchParams));
    return json(list, list.error ? 400 : 200);
  }
  if (path === "/api/sweeps") return json(await sweepsList(results));
  if (first === "api" && rest[0] === "run" && rest[1]) {
    return json(await runDetail(results, rest[1], Number(url.searchParams.get("since") ?? 0)));
  }
  if (first === "api" && rest[0] === "sweep" && rest[1]) {
    return json(await sweepDetail(app, results, rest[1]));
  }
  return null;
}

/** A file under the results folder (`/files/...`), checked against its entry's seal. */
async function fileAnswer(results: string, first: string, arg: string): Promise<Response> {
  if (first === "files" && arg) {
    const file = await resolveInside(results, arg);
    if (!file) return text(404, "not found (or outside the results folder)");
    // a file of a cache entry is served only while its bits match the entry's seal
    const damaged = await damagedFile(results, file);
    if (damaged) return text(409, damaged);
    try {
      return new Response(await Deno.readFile(file), {
        headers: {
          "content-type": TYPES[extname(file)] ?? "application/octet-stream",
          "x-content-type-options": "nosniff",
        },
      });
    } catch {
      return text(404, "not found");
    }
  }
  return text(404, "not found");
}

const html = (page: string, arg: string, title: string) =>
  new Response(pageHtml(page, arg, title), {
    headers: { "content-type": TYPES[".html"], "cache-control": "no-store" },
  });

/** `deno task ui`; serves until interrupted. */
export async function uiCommand(app: App, args: string[]): Promise<number> {
  const parsed = parseCommand<
    { results: string; port: string; host: string; "allow-host": string[] }
  >(args, USAGE, {
    results: { type: "string", default: "results" },
    port: { type: "string", default: "8470" },
    host: { type: "string", default: "127.0.0.1" },
    "allow-host": { type: "string", multiple: true, default: [] },
  });
  if (!parsed) return 0;
  const { values } = parsed;
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`--port ${values.port}: expected an integer from 0 to 65535`, USAGE);
  }
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(values.results);
  } catch {
    throw new UsageError(
      `--results ${values.results}: no such folder; run something first (deno task run configs/quick.json)`,
      USAGE,
    );
  }
  if (!info.isDirectory) throw new UsageError(`--results ${values.results}: not a folder`, USAGE);
  const results = resolve(values.results);
  let server: Deno.HttpServer<Deno.NetAddr>;
  const ready = Promise.withResolvers<number>();
  let handle: (req: Request) => Promise<Response> = () => Promise.resolve(text(503, "starting"));
  try {
    server = Deno.serve({
      hostname: values.host,
      port,
      onListen: ({ port }) => ready.resolve(port),
    }, (req) => handle(req));
  } catch (e) {
    throw new UsageError(
      `--port ${port}: cannot listen on ${values.host}:${port} (${
        (e as Error).message
      }); pick another --port`,
      USAGE,
    );
  }
  const bound = await ready.promise;
  const hosts = allowedHosts(
    values.host,
    bound,
    values["allow-host"],
    ANY.includes(values.host) ? machineAddresses() : [],
  );
  if (!LOOPBACK.includes(values.host)) {
    // once, before the address line: the results are now readable from elsewhere
    console.error(
      `ui: warning: listening on ${values.host}, not this machine alone: anyone who reaches it can read the results; it answers Host ${
        [...hosts].filter((h) => h.endsWith(`:${bound}`)).join(", ")
      } (add names with --allow-host)`,
    );
  }
  handle = handler(app, results, hosts);
  const shown = values.host.includes(":") ? `[${values.host}]` : values.host;
  console.log(
    `gan-pipeline ui: http://${shown}:${bound}/  (results: ${values.results}; Ctrl-C stops)`,
  );
  await server.finished;
  return 0;
}
