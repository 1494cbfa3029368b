/**
 * `deno task docs`: writes what is generated from the config schema, so a knob is declared
 * once: `configs/schema.json` (for editors) and `docs/config-reference.md` (between its
 * `config-reference` markers). A test checks both are current.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { configReference } from "./docs.ts";
 * assert(configReference().includes("`adversarial.batchSize`"));
 * ```
 */
import { defaultsOf, type Field, toJsonSchema } from "../../pipeline/schema.ts";
import { sweepSchema } from "../../pipeline/sweep/spec.ts";
import { DEFAULT_RANK, RANK_METRICS } from "../vocabulary.ts";
import { CONFIG_SCHEMA } from "../schema.ts";

/** The published JSON Schema's text. */
export function schemaText(): string {
  return JSON.stringify(toJsonSchema(CONFIG_SCHEMA), null, 2) + "\n";
}

/** `configs/sweeps/schema.json`: the sweep file's JSON Schema, for editors. */
export function sweepSchemaText(): string {
  const schema = toJsonSchema(
    sweepSchema({ rankMetrics: RANK_METRICS, defaultRank: DEFAULT_RANK }),
  );
  delete (schema.properties as Record<string, unknown>).extends; // sweep files do not extend
  return JSON.stringify(schema, null, 2) + "\n";
}

function defaultText(field: Field): string {
  const d = defaultsOf(field);
  if (field.kind === "enum" || (field.kind === "string" && d !== "")) return `\`${d}\``;
  if (field.kind === "string") return '""';
  return JSON.stringify(d).replaceAll(",", ", ");
}

function allowedText(field: Field): string {
  switch (field.kind) {
    case "enum":
      return field.values.map((v) => `\`${v}\``).join(", ");
    case "int":
    case "number": {
      const lo = field.kind === "number" && field.above !== undefined
        ? `> ${field.above}`
        : field.min !== undefined
        ? `>= ${field.min}`
        : "";
      const hi = field.max !== undefined ? `<= ${field.max}` : "";
      return [lo, hi].filter(Boolean).join(", ");
    }
    case "intList":
      return `integers >= ${field.min}`;
    case "nullable":
      return `null or ${allowedText(field.inner) || `a ${field.inner.kind}`}`;
    default:
      return "";
  }
}

/** The config reference: one row per field, from the schema. */
export function configReference(): string {
  const rows: string[] = [];
  const walk = (f: Field, path: string) => {
    if (f.kind === "object") {
      for (const [k, sub] of Object.entries(f.fields)) walk(sub, path ? `${path}.${k}` : k);
      return;
    }
    const doc = f.doc.replaceAll("|", "\\|").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
    rows.push(`| \`${path}\` | ${defaultText(f)} | ${allowedText(f)} | ${doc} |`);
  };
  walk(CONFIG_SCHEMA, "");
  return ["| field | default | allowed | meaning |", "| --- | --- | --- | --- |", ...rows].join(
    "\n",
  );
}

const START = "<!-- config-reference:start (deno task docs writes this table) -->";
const END = "<!-- config-reference:end -->";

/** `page` (docs/config-reference.md) with the config reference between its markers replaced. */
export function withReference(page: string, table = configReference()): string {
  const a = page.indexOf(START), b = page.indexOf(END);
  if (a < 0 || b < a) {
    throw new Error(`docs/config-reference.md lacks the markers ${START} ... ${END}`);
  }
  return page.slice(0, a + START.length) + "\n\n" + table + "\n\n" + page.slice(b);
}

if (import.meta.main) {
  const root = new URL("../../", import.meta.url);
  await Deno.writeTextFile(new URL("configs/schema.json", root), schemaText());
  await Deno.writeTextFile(new URL("configs/sweeps/schema.json", root), sweepSchemaText());
  const page = new URL("docs/config-reference.md", root);
  await Deno.writeTextFile(page, withReference(await Deno.readTextFile(page)));
}
