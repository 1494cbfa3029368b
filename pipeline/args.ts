/**
 * Parsing a command's options the same way everywhere: `--help` (or `-h`) prints the command's
 * usage and exits 0; an unknown or malformed option is a {@link UsageError} that carries the
 * command's usage, so the user sees the right one (exit 2).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCommand } from "./args.ts";
 * const usage = "usage: demo [--n N]";
 * const ok = parseCommand(["--n", "3"], usage, { n: { type: "string" } });
 * assert.equal(ok?.values.n, "3");
 * assert.throws(() => parseCommand(["--m"], usage, {}), (e: Error & { usage?: string }) => e.usage === usage);
 * ```
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { UsageError } from "./errors.ts";

/** The parsed options (typed by the caller) and positionals, or null after printing `--help`. */
export function parseCommand<V = Record<string, unknown>>(
  args: string[],
  usage: string,
  options: ParseArgsOptionsConfig,
  { positionals = false } = {},
): { values: V; positionals: string[] } | null {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: positionals,
      options: { ...options, help: { type: "boolean", short: "h", default: false } },
    });
  } catch (e) {
    // one line, without node's advice about `--`
    throw new UsageError((e as Error).message.split(". To specify")[0], usage);
  }
  if (parsed.values.help) {
    console.log(usage);
    return null;
  }
  return { values: parsed.values as V, positionals: parsed.positionals };
}
