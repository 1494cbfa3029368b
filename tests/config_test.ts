import assert from "node:assert/strict";
import { join } from "node:path";
import { resolveConfig } from "../stages/schema.ts";
import { ConfigError } from "../pipeline/errors.ts";
import { canonicalJson, hashValue } from "../pipeline/hash.ts";
import { schemaText, sweepSchemaText, withReference } from "../stages/tools/docs.ts";
import { rejectsWith, ROOT, writeConfig } from "./helpers.ts";

async function configError(obj: unknown | string, overrides: string[] = []): Promise<string> {
  const dir = await Deno.makeTempDir();
  const p = join(dir, "c.json");
  await Deno.writeTextFile(p, typeof obj === "string" ? obj : JSON.stringify(obj, null, 2));
  try {
    await resolveConfig(p, overrides);
  } catch (e) {
    assert(e instanceof ConfigError, `expected ConfigError, got ${e}`);
    return (e as Error).message;
  }
  throw new Error("expected the config to be rejected");
}

Deno.test("shipped configs validate and baseline has the lecture's values", async () => {
  const b = await resolveConfig(join(ROOT, "configs/baseline.json"));
  assert.deepEqual(b.adversarial.iterations, 500);
  assert.deepEqual(b.adversarial.batchSize, 500);
  assert.deepEqual(b.adversarial.fitBatchSize, 32);
  assert.deepEqual(b.model.counterfeiter.hidden, [256, 512, 1024]);
  assert.deepEqual(b.model.police.hidden, [1024, 512, 256]);
  assert.deepEqual(b.model.police.dropout, 0.3);
  assert.deepEqual(b.optimizer.epsilon, 1e-7);
  assert.deepEqual(b.loss.form, "logits");
  assert.deepEqual(b.adversarial.policeDropoutInCounterfeiterStep, false);
  const q = await resolveConfig(join(ROOT, "configs/quick.json"));
  assert.deepEqual(q.name, "quick");
  const f = await resolveConfig(join(ROOT, "configs/fashion.json"));
  assert.deepEqual([f.data.source, f.adversarial.iterations, f.name], ["file", 500, "fashion"]);
});

Deno.test("unknown key is an error with a did-you-mean hint and the path", async () => {
  const msg = await configError({ adversarial: { iteratons: 5 } });
  assert.match(msg, /adversarial\.iteratons: unknown key \(did you mean "iterations"\?\)/);
});

Deno.test("wrong type and out-of-range values name the field and what is allowed", async () => {
  assert.match(
    await configError({ adversarial: { batchSize: "big" } }),
    /adversarial\.batchSize: expected an integer, got string "big"/,
  );
  assert.match(
    await configError({ adversarial: { batchSize: 0 } }),
    /adversarial\.batchSize: 0 is out of range; allowed: >= 1/,
  );
  assert.match(
    await configError({ model: { police: { dropout: 1.5 } } }),
    /model\.police\.dropout: 1\.5 is out of range/,
  );
  assert.match(
    await configError({ loss: { form: "logit" } }),
    /loss\.form: .*did you mean "logits".*allowed: logits, clipped/,
  );
  assert.match(await configError({ seed: 1.5 }), /seed: expected an integer/);
});

Deno.test("malformed JSON gives line and column", async () => {
  const msg = await configError('{\n  "seed": 1,\n  "adversarial": { "iterations": 5, }\n}');
  assert.match(msg, /c\.json:3:\d+: malformed JSON/);
});

Deno.test("missing config file is a config error naming the path", async () => {
  await rejectsWith(
    () => resolveConfig("/nonexistent/x.json"),
    ConfigError,
    "config file not found: /nonexistent/x.json",
  );
});

Deno.test("extends merges deeply, the child wins, and cycles are errors", async () => {
  const dir = await Deno.makeTempDir();
  await writeConfig(dir, "base", { seed: 3, adversarial: { iterations: 7, batchSize: 9 } });
  const child = await writeConfig(dir, "child", {
    extends: "base.json",
    adversarial: { iterations: 8 },
  });
  const cfg = await resolveConfig(child);
  assert.deepEqual([cfg.seed, cfg.adversarial.iterations, cfg.adversarial.batchSize, cfg.name], [
    3,
    8,
    9,
    "child",
  ]);
  await writeConfig(dir, "a", { extends: "b.json" });
  await writeConfig(dir, "b", { extends: "a.json" });
  await rejectsWith(
    () => resolveConfig(join(dir, "a.json")),
    ConfigError,
    "extends cycle: a.json -> b.json -> a.json",
  );
});

Deno.test("--set overrides parse JSON values and are validated like the file", async () => {
  const dir = await Deno.makeTempDir();
  const p = await writeConfig(dir, "c", {});
  const cfg = await resolveConfig(p, [
    "adversarial.iterations=50",
    "model.police.hidden=[4,2]",
    "loss.form=clipped",
  ]);
  assert.deepEqual(cfg.adversarial.iterations, 50);
  assert.deepEqual(cfg.model.police.hidden, [4, 2]);
  assert.deepEqual(cfg.loss.form, "clipped");
  await rejectsWith(
    () => resolveConfig(p, ["adversarial.iteration=5"]),
    ConfigError,
    'did you mean "iterations"',
  );
});

Deno.test("a nullable field with a default: omitted gives the default, null turns it off", async () => {
  const dir = await Deno.makeTempDir();
  const p = await writeConfig(dir, "c", {});
  assert.equal((await resolveConfig(p)).adversarial.lossLimit, 1000);
  assert.equal(
    (await resolveConfig(p, ["adversarial.lossLimit=null"])).adversarial.lossLimit,
    null,
  );
  const file = await writeConfig(dir, "n", { adversarial: { lossLimit: null } });
  assert.equal((await resolveConfig(file)).adversarial.lossLimit, null);
  assert.match(await configError({ adversarial: { lossLimit: 0 } }), /adversarial\.lossLimit/);
});

Deno.test("url source requires checksums", async () => {
  const msg = await configError({
    data: {
      source: "url",
      files: {
        trainImages: "http://x/a",
        trainLabels: "http://x/b",
        testImages: "http://x/c",
        testLabels: "http://x/d",
      },
    },
  });
  assert.match(msg, /data\.sha256\.trainImages: required when data\.source is "url"/);
});

Deno.test("canonical hashing ignores key order and sees every value", () => {
  assert.deepEqual(
    canonicalJson({ b: 1, a: { d: [1, 2], c: null } }),
    '{"a":{"c":null,"d":[1,2]},"b":1}',
  );
  assert.deepEqual(hashValue({ x: 1, y: 2 }), hashValue({ y: 2, x: 1 }));
  assert(hashValue({ x: 1 }) !== hashValue({ x: 1.0000001 }));
});

Deno.test("the published configs/schema.json and docs/config-reference.md match the schema", async () => {
  const committed = JSON.parse(await Deno.readTextFile(join(ROOT, "configs/schema.json")));
  assert.deepEqual(committed, JSON.parse(schemaText()));
  const sweeps = JSON.parse(await Deno.readTextFile(join(ROOT, "configs/sweeps/schema.json")));
  assert.deepEqual(sweeps, JSON.parse(sweepSchemaText()));
  assert.equal(sweeps.properties.search.anyOf[0].properties.metric.enum.includes("frechet"), true);
  // the page is formatted by deno fmt after generation: compare the rows, not the padding
  const rows = (md: string) =>
    md.split("\n").filter((l) => l.startsWith("| `")).map((l) =>
      l.split("|").map((c) => c.trim()).join("|")
    );
  const page = await Deno.readTextFile(join(ROOT, "docs/config-reference.md"));
  assert.deepEqual(rows(page), rows(withReference(page)), "run `deno task docs`");
  assert.ok(rows(page).length > 40);
});
