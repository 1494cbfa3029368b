import assert from "node:assert/strict";
import { join } from "node:path";
import { DataError } from "../pipeline/errors.ts";
import { decodeNpy, encodeNpy, writeNpy } from "../stages/formats/npy.ts";
import { fetchWithRetries } from "../stages/download.ts";
import { encodeIdx, gunzip, parseIdx } from "../stages/formats/idx.ts";
import { gzip, numpyPython, rejectsWith, serve } from "./helpers.ts";

Deno.test("npy round trip keeps dtype, shape and values", () => {
  const f = decodeNpy(encodeNpy(new Float32Array([1.5, -2, 3, 4, 5, 6]), [2, 3]));
  assert.deepEqual(f.shape, [2, 3]);
  assert.ok(f.data instanceof Float32Array);
  assert.equal(f.data[1], -2);
  const u = decodeNpy(encodeNpy(new Uint8Array([7, 8]), [2]));
  assert.ok(u.data instanceof Uint8Array);
  assert.deepEqual([...u.data], [7, 8]);
  const i = decodeNpy(encodeNpy(new Int32Array([-1]), [1, 1]));
  assert.ok(i.data instanceof Int32Array);
  assert.throws(() => decodeNpy(encodeNpy(new Uint8Array(4), [4]).subarray(0, 66)), DataError);
});

Deno.test("numpy.load reads our .npy files with the right dtype and shape", async () => {
  const dir = await Deno.makeTempDir();
  await writeNpy(join(dir, "f.npy"), new Float32Array([0.25, 0.5, 0.75, 1, 0, 0]), [3, 2]);
  await writeNpy(join(dir, "u.npy"), new Uint8Array([1, 2, 3]), [3]);
  await writeNpy(join(dir, "i.npy"), new Int32Array([-5, 6]), [2]);
  const script = `import numpy as np, sys
f = np.load(sys.argv[1] + "/f.npy"); u = np.load(sys.argv[1] + "/u.npy"); i = np.load(sys.argv[1] + "/i.npy")
print(f.dtype, f.shape, float(f[1, 1]), u.dtype, u.shape, int(u.sum()), i.dtype, int(i[0]))`;
  const out = await new Deno.Command(await numpyPython(), {
    args: ["-c", script, dir],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.equal(text, "float32 (3, 2) 1.0 uint8 (3,) 6 int32 -5");
});

Deno.test("IDX parsing validates the header and the length", async () => {
  const ok = encodeIdx(new Uint8Array(2 * 3 * 3), [2, 3, 3]);
  assert.deepEqual(parseIdx(ok, "x", 3).dims, [2, 3, 3]);
  assert.throws(
    () => parseIdx(ok.subarray(0, ok.length - 1), "imgs", 3),
    /imgs: truncated IDX file: header says 2x3x3 = 18 bytes of data, found 17/,
  );
  assert.throws(() => parseIdx(ok, "imgs", 1), /imgs: IDX has 3 dimensions, expected 1/);
  const bad = ok.slice();
  bad[2] = 0x0d;
  assert.throws(() => parseIdx(bad, "imgs"), /data type 0xd is not unsigned byte/);
  assert.throws(() => parseIdx(new Uint8Array([1, 2, 3, 4, 5]), "junk"), /junk: not an IDX file/);
  const padded = new Uint8Array(ok.length + 3);
  padded.set(ok);
  assert.throws(() => parseIdx(padded, "p"), /3 bytes after the data/);
  const gz = await gzip(ok);
  assert.deepEqual(await gunzip(gz, "g"), ok);
  await rejectsWith(
    () => gunzip(gz.subarray(0, gz.length - 8), "cut.gz"),
    DataError,
    "cut.gz: corrupt or truncated gzip",
  );
});

Deno.test("downloads retry a dropped connection and a 5xx, then succeed", async () => {
  const body = encodeIdx(new Uint8Array(10), [10]);
  const s = serve((_req, n) => {
    if (n === 1) return new Response("busy", { status: 503 });
    if (n === 2) {
      // claims the whole length but sends half, then ends: a dropped connection
      const stream = new ReadableStream({
        start(c) {
          c.enqueue(body.subarray(0, 5));
          c.error(new Error("reset"));
        },
      });
      return new Response(stream, { headers: { "content-length": String(body.length) } });
    }
    return new Response(body as BodyInit);
  });
  try {
    const got = await fetchWithRetries(`${s.base}/f`, {
      retries: 3,
      timeoutSeconds: 5,
      backoffMs: 1,
    });
    assert.deepEqual(got, body);
    assert.equal(s.count(), 3);
  } finally {
    await s.close();
  }
});

Deno.test("a server that always drops, a 404, and an unreachable host are one-line errors", async () => {
  const s = serve((req) => {
    if (req.url.endsWith("/missing")) return new Response("no", { status: 404 });
    return new Response(new ReadableStream({ start: (c) => c.error(new Error("reset")) }));
  });
  try {
    await rejectsWith(
      () => fetchWithRetries(`${s.base}/drop`, { retries: 2, timeoutSeconds: 5, backoffMs: 1 }),
      DataError,
      "after 3 attempts",
    );
    await rejectsWith(
      () => fetchWithRetries(`${s.base}/missing`, { retries: 2, timeoutSeconds: 5, backoffMs: 1 }),
      DataError,
      "HTTP 404",
    );
  } finally {
    await s.close();
  }
  // a port nothing listens on: connection refused, as when offline
  const e = await rejectsWith(
    () => fetchWithRetries(s.base + "/x", { retries: 1, timeoutSeconds: 2, backoffMs: 1 }),
    DataError,
    "cannot download",
  );
  assert.ok(!e.message.includes("\n"));
});
