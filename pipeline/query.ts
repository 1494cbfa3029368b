/**
 * A small query language over runs, as MLflow's search takes: comparisons of a run's figures,
 * config fields, name, status and tags, joined by `and`, `or`, `not` and parentheses.
 *
 *     score > 0.8 and seed = 2
 *     metrics.classesCovered >= 9 or (tag = best and not status = failed)
 *     run ~ quick        (~: contains, case-insensitive)
 *
 * A field is a figure, a config path (`optimizer.learningRate`) or its last name (`learningRate`:
 * the shallowest path that ends so, when one is), with MLflow's `metrics.` and `params.` prefixes accepted; `run`,
 * `status`, `tag` (any of the run's tags) and `note`. A bad query is one error naming what and
 * where, with the closest field for a typo.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseQuery } from "./query.ts";
 * const q = parseQuery("score > 0.8 and seed = 2", { params: ["seed"], figures: ["score"] });
 * const row = (seed: number, score: number) =>
 *   ({ run: "r", status: "done", config: { seed }, figures: { score } });
 * assert.equal(q(row(2, 0.9)), true);
 * assert.equal(q(row(1, 0.9)), false);
 * assert.throws(() => parseQuery("scroe > 1", { params: [], figures: ["score"] }),
 *   /unknown field "scroe" \(did you mean "score"\?\)/);
 * ```
 */
import { didYouMean } from "./config.ts";

/** What a query reads of a run. */
export interface QueryRow {
  run: string;
  status: string;
  /** Flat config: dotted path -> value. */
  config: Record<string, unknown>;
  figures: Record<string, number | undefined>;
  tags?: string[];
  note?: string;
}

/** A parsed query: whether a row matches. */
export type Query = (row: QueryRow) => boolean;

/** A query that does not parse, or names a field nobody has. */
export class QueryError extends Error {
  override name = "QueryError";
}

type Token = { kind: "word" | "number" | "string" | "op" | "paren"; text: string; at: number };

const OPS = ["<=", ">=", "!=", "==", "=", "<", ">", "~"];

function tokenize(text: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const at = i;
    if (c === "(" || c === ")") {
      out.push({ kind: "paren", text: c, at });
      i++;
      continue;
    }
    const op = OPS.find((o) => text.startsWith(o, i));
    if (op) {
      out.push({ kind: "op", text: op, at });
      i += op.length;
      continue;
    }
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) throw new QueryError(`unclosed ${c} at ${at + 1}`);
      out.push({ kind: "string", text: text.slice(i + 1, end), at });
      i = end + 1;
      continue;
    }
    const num = text.slice(i).match(/^-?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?(?![\w.])/i);
    if (num) {
      out.push({ kind: "number", text: num[0], at });
      i += num[0].length;
      continue;
    }
    const word = text.slice(i).match(/^[A-Za-z_][\w.-]*/);
    if (!word) throw new QueryError(`unexpected "${c}" at ${at + 1}`);
    out.push({ kind: "word", text: word[0], at });
    i += word[0].length;
  }
  return out;
}

/** The fields a query may name: the config paths and the figures the runs have. */
export interface QueryFields {
  params: string[];
  figures: string[];
}

const BUILTIN = ["run", "status", "tag", "tags", "note"];

/** A field name to the reader of its value, or a QueryError naming the closest field. */
function resolveField(name: string, fields: QueryFields): (r: QueryRow) => unknown[] {
  const bare = name.replace(/^(metrics|figures|params)\./, "");
  if (bare === "tag" || bare === "tags") return (r) => r.tags ?? [];
  if (bare === "run") return (r) => [r.run];
  if (bare === "status") return (r) => [r.status];
  if (bare === "note") return (r) => [r.note ?? ""];
  if (fields.figures.includes(bare)) return (r) => [r.figures[bare]];
  if (fields.params.includes(bare)) return (r) => [r.config[bare]];
  const short = fields.params.filter((p) => p.split(".").at(-1) === bare);
  // the shallowest path, when one is: learningRate is optimizer.learningRate, not the
  // per-net overrides below it
  const depth = (p: string) => p.split(".").length;
  const top = short.filter((p) => depth(p) === Math.min(...short.map(depth)));
  if (top.length === 1) return (r) => [r.config[top[0]]];
  if (short.length > 1) {
    throw new QueryError(`field "${name}" is ambiguous: ${short.join(", ")}; give the path`);
  }
  const all = [...BUILTIN, ...fields.figures, ...fields.params];
  throw new QueryError(`unknown field "${name}"${didYouMean(bare, all)}`);
}

function compareOne(v: unknown, op: string, want: string | number | boolean | null): boolean {
  if (v === undefined) return false;
  if (op === "~") return String(v ?? "").toLowerCase().includes(String(want).toLowerCase());
  if (typeof want === "number") {
    if (typeof v !== "number") return false;
    switch (op) {
      case "<":
        return v < want;
      case "<=":
        return v <= want;
      case ">":
        return v > want;
      case ">=":
        return v >= want;
      case "!=":
        return v !== want;
      default:
        return v === want;
    }
  }
  const same = v === want || (typeof v === "string" && v === String(want));
  if (op === "!=") return !same;
  if (op === "=" || op === "==") return same;
  // ordering of strings: lexicographic
  const a = String(v), b = String(want);
  return op === "<" ? a < b : op === "<=" ? a <= b : op === ">" ? a > b : a >= b;
}

/** Parses `text` into a row predicate; throws a QueryError that says what is wrong and where. */
export function parseQuery(text: string, fields: QueryFields): Query {
  const toks = tokenize(text);
  let p = 0;
  const peek = () => toks[p];
  const word = (w: string) => peek()?.kind === "word" && peek().text.toLowerCase() === w;
  const where = () => (peek() ? `at ${peek().at + 1} ("${peek().text}")` : "at the end");
  const expr = (): Query => {
    let left = term();
    while (word("or")) {
      p++;
      const l = left, r = term();
      left = (x) => l(x) || r(x);
    }
    return left;
  };
  const term = (): Query => {
    let left = factor();
    while (word("and")) {
      p++;
      const l = left, r = factor();
      left = (x) => l(x) && r(x);
    }
    return left;
  };
  const factor = (): Query => {
    if (word("not")) {
      p++;
      const f = factor();
      return (x) => !f(x);
    }
    if (peek()?.kind === "paren" && peek().text === "(") {
      p++;
      const e = expr();
      if (!(peek()?.kind === "paren" && peek().text === ")")) {
        throw new QueryError(`expected ")" ${where()}`);
      }
      p++;
      return e;
    }
    const f = peek();
    if (f?.kind !== "word") throw new QueryError(`expected a field ${where()}`);
    p++;
    const read = resolveField(f.text, fields);
    const op = peek();
    if (op?.kind !== "op") {
      throw new QueryError(`expected an operator (= != < <= > >= ~) after "${f.text}" ${where()}`);
    }
    p++;
    const v = peek();
    if (!v || v.kind === "op" || v.kind === "paren") {
      throw new QueryError(`expected a value after "${f.text} ${op.text}" ${where()}`);
    }
    p++;
    const lower = v.text.toLowerCase();
    const value = v.kind === "number"
      ? Number(v.text)
      : v.kind === "word" && (lower === "true" || lower === "false")
      ? lower === "true"
      : v.kind === "word" && lower === "null"
      ? null
      : v.text;
    return (x) => read(x).some((got) => compareOne(got, op.text, value));
  };
  if (toks.length === 0) throw new QueryError("empty query");
  const q = expr();
  if (p < toks.length) throw new QueryError(`unexpected ${where()}: join conditions with and/or`);
  return q;
}
