/**
 * Config schemas as data: one tree drives validation, defaults, the published JSON Schema,
 * the README's config reference and, through {@link Infer}, the config's TypeScript type, so
 * a knob is declared once. The engine's own fields ({@link ENGINE_FIELDS}) sit beside the
 * application's.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultsOf, type Infer, int, obj } from "./schema.ts";
 * const schema = obj("demo", { epochs: int(3, "passes") });
 * const d = defaultsOf(schema) as Infer<typeof schema>;
 * assert(d.epochs === 3);
 * ```
 */

/** An integer field. */
export interface IntField {
  kind: "int";
  doc: string;
  default: number;
  min?: number;
  max?: number;
}
/** A number field; `above` is an exclusive minimum. */
export interface NumberField {
  kind: "number";
  doc: string;
  default: number;
  min?: number;
  max?: number;
  above?: number;
}
/** A boolean field. */
export interface BoolField {
  kind: "bool";
  doc: string;
  default: boolean;
}
/** A string field. */
export interface StringField {
  kind: "string";
  doc: string;
  default: string;
}
/** One of a fixed list of strings. */
export interface EnumField<V extends readonly string[] = readonly string[]> {
  kind: "enum";
  doc: string;
  default: V[number];
  values: V;
}
/** A non-empty list of integers of at least `min`. */
export interface IntListField {
  kind: "intList";
  doc: string;
  default: number[];
  min: number;
}
/** A field that may be null (its default, unless `default` names a value). */
export interface NullableField<I extends Field = Field> {
  kind: "nullable";
  doc: string;
  inner: I;
  default: unknown;
}
/** An object of named fields; unknown keys are errors. */
export interface ObjectField<F extends Record<string, Field> = Record<string, Field>> {
  kind: "object";
  doc: string;
  fields: F;
}

/** An object whose keys are free (config paths, say), every value of one kind. */
export interface RecordField<V extends Field = Field> {
  kind: "record";
  doc: string;
  value: V;
  /** The fewest keys it may have. */
  minKeys: number;
}
/** A list of values of one kind. */
export interface ListField<I extends Field = Field> {
  kind: "list";
  doc: string;
  item: I;
  /** The fewest items it may have. */
  minItems: number;
}
/** Any JSON value (checked by whoever uses it); `object` narrows it to a path or an object. */
export interface JsonField {
  kind: "json";
  doc: string;
  /** Which JSON types are allowed (default: any). */
  types?: readonly ("string" | "object" | "array" | "number" | "boolean")[];
}

/** One field of a schema. */
export type Field =
  | IntField
  | NumberField
  | BoolField
  | StringField
  | EnumField
  | IntListField
  | NullableField
  | ObjectField
  | RecordField
  | ListField
  | JsonField;

/** The TypeScript type of the values a field accepts (after defaults are filled). */
export type Infer<F> = F extends { kind: "int" | "number" } ? number
  : F extends { kind: "bool" } ? boolean
  : F extends { kind: "string" } ? string
  : F extends { kind: "enum"; values: readonly (infer V)[] } ? V
  : F extends { kind: "intList" } ? number[]
  : F extends { kind: "nullable"; inner: infer I } ? Infer<I> | null
  : F extends { kind: "object"; fields: infer Fs } ? { -readonly [K in keyof Fs]: Infer<Fs[K]> }
  : F extends { kind: "record"; value: infer V } ? Record<string, Infer<V>>
  : F extends { kind: "list"; item: infer I } ? Infer<I>[]
  : F extends { kind: "json" } ? unknown
  : never;

/** An integer field with a default and an optional range. */
export const int = (def: number, doc: string, min?: number, max?: number): IntField => ({
  kind: "int",
  default: def,
  doc,
  min,
  max,
});
/** A number field with a default and an optional range. */
export const num = (
  def: number,
  doc: string,
  o: { min?: number; max?: number; above?: number } = {},
): NumberField => ({ kind: "number", default: def, doc, ...o });
/** A boolean field. */
export const bool = (def: boolean, doc: string): BoolField => ({ kind: "bool", default: def, doc });
/** A string field. */
export const str = (def: string, doc: string): StringField => ({
  kind: "string",
  default: def,
  doc,
});
/** An enum field; the values' literal types flow into {@link Infer}. */
export const en = <const V extends readonly string[]>(
  def: V[number],
  values: V,
  doc: string,
): EnumField<V> => ({ kind: "enum", default: def, values, doc });
/** A non-empty integer list. */
export const intList = (def: number[], min: number, doc: string): IntListField => ({
  kind: "intList",
  default: def,
  min,
  doc,
});
/** A record: free keys, each value a `value`; at least `minKeys` of them. */
export const record = <V extends Field>(doc: string, value: V, minKeys = 0): RecordField<V> => ({
  kind: "record",
  doc,
  value,
  minKeys,
});
/** A list of `item`s, at least `minItems` of them. */
export const list = <I extends Field>(doc: string, item: I, minItems = 0): ListField<I> => ({
  kind: "list",
  doc,
  item,
  minItems,
});
/** Any JSON value, or one of `types`. */
export const json = (doc: string, types?: JsonField["types"]): JsonField => ({
  kind: "json",
  doc,
  types,
});
/** A nullable field, null unless a config sets it (or `fallback` when given). */
export const nullable = <I extends Field>(
  doc: string,
  inner: I,
  fallback: number | string | boolean | null = null,
): NullableField<I> => ({
  kind: "nullable",
  doc,
  inner,
  default: fallback,
});
/** An object field. */
export const obj = <const F extends Record<string, Field>>(
  doc: string,
  fields: F,
): ObjectField<F> => ({
  kind: "object",
  doc,
  fields,
});

/** The fields every config has, whatever the application: its name and seed. */
export const ENGINE_FIELDS = {
  name: str("", "Run name; the run folder is <name>-<hash>. Defaults to the file's name."),
  description: str("", "Free text shown in the report."),
  seed: int(0, "Seed of every random draw: weights, noise, shuffles, dropout, subsets.", 0),
} as const;

/** The engine's part of every config. */
export type EngineConfig = Infer<ObjectField<typeof ENGINE_FIELDS>>;

/** The keys allowed at the top of a config file beside the schema's fields. */
export const META_KEYS = ["$schema", "extends"] as const;

/** The default value a field takes when a config omits it. */
export function defaultsOf(field: Field): unknown {
  switch (field.kind) {
    case "object":
      return Object.fromEntries(
        Object.entries(field.fields).map(([k, f]) => [k, defaultsOf(f)]),
      );
    case "nullable":
      return field.default;
    case "json":
      return null;
    case "intList":
      return [...field.default];
    case "record":
      return {};
    case "list":
      return [];
    default:
      return field.default;
  }
}

/** The schema as a JSON Schema (draft-07) object, for editors. */
export function toJsonSchema(field: Field, top = true): Record<string, unknown> {
  const base: Record<string, unknown> = { description: field.doc };
  switch (field.kind) {
    case "int":
      return {
        ...base,
        type: "integer",
        default: field.default,
        minimum: field.min,
        maximum: field.max,
      };
    case "number":
      return {
        ...base,
        type: "number",
        default: field.default,
        minimum: field.min,
        maximum: field.max,
        exclusiveMinimum: field.above,
      };
    case "bool":
      return { ...base, type: "boolean", default: field.default };
    case "string":
      return { ...base, type: "string", default: field.default };
    case "enum":
      return { ...base, enum: [...field.values], default: field.default };
    case "intList":
      return {
        ...base,
        type: "array",
        items: { type: "integer", minimum: field.min },
        minItems: 1,
        default: field.default,
      };
    case "record":
      return {
        ...base,
        type: "object",
        additionalProperties: toJsonSchema(field.value, false),
        minProperties: field.minKeys || undefined,
      };
    case "list":
      return {
        ...base,
        type: "array",
        items: toJsonSchema(field.item, false),
        minItems: field.minItems || undefined,
      };
    case "json":
      return field.types ? { ...base, type: [...field.types] } : base;
    case "nullable": {
      const inner = toJsonSchema(field.inner, false);
      return {
        description: field.doc,
        anyOf: [{ ...inner, description: undefined }, { type: "null" }],
        default: field.default,
      };
    }
    case "object": {
      const properties: Record<string, unknown> = {};
      for (const [k, f] of Object.entries(field.fields)) properties[k] = toJsonSchema(f, false);
      if (top) {
        properties["$schema"] = {
          type: "string",
          description: "Path of this schema, for editors.",
        };
        properties["extends"] = {
          type: "string",
          description: "Path of a config this one overrides (relative to this file).",
        };
      }
      return {
        ...(top ? { $schema: "http://json-schema.org/draft-07/schema#", title: field.doc } : {}),
        ...base,
        type: "object",
        properties,
        additionalProperties: false,
      };
    }
  }
}
