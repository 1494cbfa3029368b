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
 * assert.equal(parseCommand(["--n", "-5"], usage, { n: { type: "string" } })?.values.n, "-5");
 * ```
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { UsageError } from "./errors.ts";
import { didYouMean } from "./config.ts";

/** The parsed options (typed by the caller) and positionals, or null after printing `--help`. */
export function parseCommand<V = Record<string, unknown>>(
  args: string[],
  usage: string,
  options: ParseArgsOptionsConfig,
  { positionals = false } = {},
): { values: V; positionals: string[] } | null {
  // `--n -5`: a negative number is the option's value, not an option (node's parser says
  // "ambiguous"); it reaches the command, which says what range it takes
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = args[i].startsWith("--") ? args[i].slice(2) : null;
    if (name && options[name]?.type === "string" && /^-\d/.test(args[i + 1] ?? "")) {
      joined.push(`${args[i]}=${args[++i]}`);
    } else joined.push(args[i]);
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: joined,
      allowPositionals: positionals,
      options: { ...options, help: { type: "boolean", short: "h", default: false } },
    });
  } catch (e) {
    // one line, without node's advice about `--`, with the closest option for a typo
    const message = (e as Error).message.split(". To specify")[0];
    const unknown = message.match(/^Unknown option '--([^']+)'/)?.[1];
    const names = [...Object.keys(options), "help"];
    const hint = unknown ? didYouMean(unknown, names).replace(/"([^"]+)"/, '"--$1"') : "";
    throw new UsageError(message + hint, usage);
  }
  if (parsed.values.help) {
    console.log(usage);
    return null;
  }
  return { values: parsed.values as V, positionals: parsed.positionals };
}
