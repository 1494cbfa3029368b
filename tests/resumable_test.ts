/** The engine's resumable state and folder swaps: what a crash at each moment leaves. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ResumableState } from "../pipeline/resumable.ts";
import { recoverSwap, swapIn } from "../pipeline/swap.ts";

const write = (text: string) => async (dir: string) => {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(join(dir, "f"), text);
};
const checkpoint = (name: string, text: string) => ({
  snapshot: name,
  writeSnapshot: write(`snap ${text}`),
  writeState: write(`state ${text}`),
});
const names = async (dir: string) =>
  (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();

Deno.test("a crash mid-swap leaves a whole folder: the old twin comes back or goes", async () => {
  const dir = await Deno.makeTempDir(), final = join(dir, "state");
  await write("old")(final);
  // killed after the old one moved aside, before the new one moved in
  await Deno.rename(final, `${final}.old-999`);
  await recoverSwap(final);
  assert.equal(await Deno.readTextFile(join(final, "f")), "old");
  // killed after the new one moved in, before the old one was removed
  await write("stale")(`${final}.old-998`);
  await recoverSwap(final);
  assert.deepEqual(await names(dir), ["state"]);
  // a swap that cannot move the new folder in puts the old one back
  await assert.rejects(() => swapIn(join(dir, "missing"), final));
  assert.equal(await Deno.readTextFile(join(final, "f")), "old");
});

Deno.test("resumable state: leftovers of a killed writer are cleared, later snapshots redone", async () => {
  const work = await Deno.makeTempDir();
  const r = new ResumableState(work);
  assert.equal(await r.recover(), null);
  await r.save(10, checkpoint("iter_10", "10"));
  await r.save(20, checkpoint("iter_20", "20"));
  // killed while writing the next checkpoint: its snapshot in place, its state half written
  await write("snap 30")(join(r.snapshotsDir, "iter_30"));
  await write("half")(join(work, "state.tmp-4242"));
  await write("half")(join(r.snapshotsDir, "iter_40.tmp-4242"));
  const again = new ResumableState(work);
  assert.equal(await again.recover(), 20);
  assert.deepEqual(await names(r.snapshotsDir), ["iter_10", "iter_20"]);
  assert.deepEqual(await names(work), ["snapshots", "state"]);
  assert.equal(await Deno.readTextFile(join(again.dir, "f")), "state 20");
  // a damaged snapshot damages the state it belongs to
  await Deno.writeTextFile(join(r.snapshotsDir, "iter_10", "f"), "snap 1O");
  const lines: string[] = [];
  assert.equal(await new ResumableState(work, (l) => lines.push(l)).recover(), null);
  assert.match(lines.join("\n"), /^resume state at 20 is damaged: iter_10\/f does not match/);
  const aside = (await names(work)).filter((n) => n.startsWith("damaged-"));
  assert.deepEqual(await names(work), aside);
  assert.deepEqual(await names(join(work, aside[0])), ["snapshots", "state"]);
  // the next run starts clean
  assert.equal(await new ResumableState(work).recover(), null);
});

Deno.test("resumable state seeded from an entry links its files and seals them from its seal", async () => {
  const entry = await Deno.makeTempDir();
  await write("w")(join(entry, "net"));
  await write("c")(join(entry, "checkpoints", "iter_5"));
  await Deno.writeTextFile(join(entry, "rng.json"), "[1]");
  const { sealOf } = await import("../pipeline/store.ts");
  await Deno.writeTextFile(join(entry, "meta.json"), JSON.stringify({ seal: await sealOf(entry) }));
  const work = await Deno.makeTempDir();
  const r = new ResumableState(work);
  await r.seed(5, {
    entry,
    links: { net: "net", "rng.json": "rng.json" },
    texts: { "history.json": "[]" },
    snapshots: { iter_5: "checkpoints/iter_5" },
  });
  assert.equal(await new ResumableState(work).recover(), 5);
  assert.equal(await Deno.readTextFile(join(r.dir, "net", "f")), "w");
  assert.equal((await Deno.stat(join(r.dir, "net", "f"))).nlink, 2, "hard-linked, not copied");
  assert.deepEqual(await names(r.dir), ["history.json", "net", "rng.json", "seal.json"]);
  const out = join(await Deno.makeTempDir(), "checkpoints");
  await r.linkSnapshots(out);
  assert.equal(await Deno.readTextFile(join(out, "iter_5", "f")), "c");
});
