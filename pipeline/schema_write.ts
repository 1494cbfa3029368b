/** Writes `configs/schema.json` from the schema in `schema.ts` (`deno task schema`). */
import { CONFIG_SCHEMA, toJsonSchema } from "./schema.ts";

/** The published schema file's text. */
export function schemaText(): string {
  return JSON.stringify(toJsonSchema(CONFIG_SCHEMA), null, 2) + "\n";
}

if (import.meta.main) {
  await Deno.writeTextFile(new URL("../configs/schema.json", import.meta.url), schemaText());
}
