/** The schema toolkit: defaults, JSON Schema, validation errors, and the derived type. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadConfig } from "../pipeline/config.ts";
import {
  bool,
  defaultsOf,
  en,
  ENGINE_FIELDS,
  type Infer,
  int,
  intList,
  nullable,
  num,
  obj,
  str,
  toJsonSchema,
} from "../pipeline/schema.ts";
import { type Config, CONFIG_SCHEMA } from "../stages/schema.ts";

const schema = obj("demo", {
  ...ENGINE_FIELDS,
  train: obj("training", {
    rate: num(0.1, "step", { above: 0, max: 1 }),
    layers: intList([4, 2], 1, "sizes"),
    act: en("relu", ["relu", "tanh"], "activation"),
    subset: nullable("rows", int(0, "", 1)),
    note: str("x", "free text"),
    on: bool(true, "switch"),
  }),
});

Deno.test("defaults fill every field, and the type follows the schema", () => {
  const d = defaultsOf(schema) as Infer<typeof schema>;
  // these assignments type-check only if Infer derives the right types
  const act: "relu" | "tanh" = d.train.act;
  const subset: number | null = d.train.subset;
  const layers: number[] = d.train.layers;
  assert.deepEqual(d.train, { rate: 0.1, layers: [4, 2], act, subset, note: "x", on: true });
  assert.equal(layers.length, 2);
  assert.equal(d.seed, 0);
  assert.equal("backend" in d, false, "the engine imposes no tensor fields");
  const gan = defaultsOf(CONFIG_SCHEMA) as Config;
  assert.equal(gan.flushDenormals, true);
  const a: "relu" | "leakyRelu" | "elu" | "tanh" | "sigmoid" | "linear" =
    gan.model.police.activation;
  assert.equal(a, "relu");
});

Deno.test("the JSON Schema forbids unknown keys and carries ranges and enums", () => {
  const j = toJsonSchema(schema) as {
    additionalProperties: boolean;
    properties: Record<string, { properties: Record<string, Record<string, unknown>> }>;
  };
  assert.equal(j.additionalProperties, false);
  const t = j.properties.train.properties;
  assert.equal(t.rate.exclusiveMinimum, 0);
  assert.deepEqual(t.act.enum, ["relu", "tanh"]);
  assert.equal((t.subset.anyOf as unknown[]).length, 2);
});

Deno.test("validation names the path, what was wrong and what is allowed", async () => {
  const dir = await Deno.makeTempDir();
  const file = join(dir, "demo.json");
  const check = async (value: unknown, pattern: RegExp) => {
    await Deno.writeTextFile(file, JSON.stringify(value));
    await assert.rejects(() => loadConfig({ schema }, file), pattern);
  };
  await check({ train: { rate: 2 } }, /train\.rate: 2 is out of range; allowed: > 0 and <= 1/);
  await check(
    { train: { act: "rleu" } },
    /train\.act: string "rleu" is not allowed \(did you mean "relu"\?\)/,
  );
  await check({ train: { layers: [] } }, /train\.layers: expected a non-empty array/);
  await check({ trian: {} }, /trian: unknown key \(did you mean "train"\?\)/);
  await Deno.writeTextFile(file, "{}");
  const cfg = await loadConfig({ schema }, file, ["train.subset=7"]);
  assert.equal((cfg as unknown as Infer<typeof schema>).train.subset, 7);
  assert.equal(cfg.name, "demo"); // from the file name
});
