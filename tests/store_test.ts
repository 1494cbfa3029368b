/** The sealed cache store: seals, every kind of damage, quarantine, verify. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type EntryMeta, hostName, Store } from "../pipeline/store.ts";
import { verifyCache } from "../pipeline/verify_cli.ts";

const KEY_A = "a".repeat(64), KEY_B = "b".repeat(64);

async function sealedEntry(store: Store, key = KEY_A, files: Record<string, string> = {}) {
  const tmp = await store.begin("demo", key);
  await Deno.mkdir(join(tmp, "sub"));
  await Deno.writeTextFile(join(tmp, "data.bin"), "0123456789");
  await Deno.writeTextFile(join(tmp, "sub", "w.bin"), "abc");
  for (const [f, text] of Object.entries(files)) await Deno.writeTextFile(join(tmp, f), text);
  const meta: EntryMeta = {
    stage: "demo",
    key,
    inputs: {
      stage: "demo",
      code: { files: {}, packages: {} },
      config: {},
      upstream: {},
      runtime: null,
      fingerprint: null,
    },
    seconds: 0,
    created: new Date().toISOString(),
  };
  await store.commit("demo", key, tmp, meta);
  return store.dir("demo", key);
}

const problemOf = async (store: Store, key = KEY_A, hash = false) => {
  const c = await store.check("demo", key, { hash });
  return c.state === "damaged" ? c.problem : c.state;
};

Deno.test("a sealed entry lists every file with size and SHA-256, and checks ok", async () => {
  const store = new Store(await Deno.makeTempDir());
  const dir = await sealedEntry(store);
  const meta = JSON.parse(await Deno.readTextFile(join(dir, "meta.json")));
  assert.deepEqual(Object.keys(meta.seal.files).sort(), ["data.bin", "sub/w.bin"]);
  assert.equal(meta.seal.files["data.bin"].size, 10);
  assert.match(meta.seal.files["sub/w.bin"].sha256, /^[0-9a-f]{64}$/);
  assert.equal(meta.seal.host, hostName());
  assert.equal(await problemOf(store, KEY_A, true), "ok");
  assert.equal(await problemOf(store, KEY_B), "absent");
});

Deno.test("each kind of damage is named: truncated, missing, garbage meta, stray file, foreign seal, bits", async () => {
  const store = new Store(await Deno.makeTempDir());
  const dir = await sealedEntry(store);
  await Deno.truncate(join(dir, "data.bin"), 4);
  assert.equal(await problemOf(store), "data.bin is 4 bytes, sealed as 10");
  await Deno.writeTextFile(join(dir, "data.bin"), "0123456789");
  assert.equal(await problemOf(store), "ok");

  await Deno.remove(join(dir, "sub", "w.bin"));
  assert.equal(await problemOf(store), "sub/w.bin is missing");
  await Deno.writeTextFile(join(dir, "sub", "w.bin"), "abc");

  await Deno.writeTextFile(join(dir, "stray.txt"), "x");
  assert.equal(await problemOf(store), "stray.txt is not part of the sealed entry");
  await Deno.remove(join(dir, "stray.txt"));

  // same size, other bits: found when hashing (asked for, or the entry is another host's)
  await Deno.writeTextFile(join(dir, "data.bin"), "0123456780");
  assert.equal(await problemOf(store), "ok");
  assert.equal(await problemOf(store, KEY_A, true), "data.bin does not match its sealed SHA-256");
  const meta = JSON.parse(await Deno.readTextFile(join(dir, "meta.json")));
  await Deno.writeTextFile(
    join(dir, "meta.json"),
    JSON.stringify({ ...meta, seal: { ...meta.seal, host: "another-node" } }),
  );
  assert.equal(await problemOf(store), "data.bin does not match its sealed SHA-256");
  await Deno.writeTextFile(join(dir, "data.bin"), "0123456789");
  assert.equal(await problemOf(store), "ok");

  const other = await sealedEntry(store, KEY_B);
  await Deno.copyFile(join(other, "meta.json"), join(dir, "meta.json"));
  assert.match(await problemOf(store), /^meta\.json is the seal of demo\/bbbbbbbbbbbb/);

  await Deno.writeTextFile(join(dir, "meta.json"), "{ garbage");
  assert.equal(await problemOf(store), "meta.json is not valid JSON");
  await Deno.writeTextFile(join(dir, "meta.json"), JSON.stringify({ ...meta, seal: undefined }));
  assert.match(await problemOf(store), /meta\.json has no seal/);
  await Deno.remove(join(dir, "meta.json"));
  assert.equal(await problemOf(store), "meta.json is missing");
  assert.equal(await store.has("demo", KEY_A), false);

  const report = await verifyCache(store.results);
  assert.equal(report.checked, 2);
  assert.deepEqual(report.damaged.map((d) => d.key), [KEY_A]);
  const moved = await store.quarantine("demo", KEY_A, "meta.json is missing");
  assert.match(moved, /cache\/\.damaged\/demo\/a{64}-/);
  assert.equal(await Deno.readTextFile(join(moved, "problem.txt")), "meta.json is missing\n");
  assert.equal(await problemOf(store), "absent");
});
