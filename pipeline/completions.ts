/**
 * `deno task completions bash|zsh|fish`: a shell completion script for `deno task <command>`,
 * made from each command's own `--help` text (so it cannot fall out of step with the options),
 * plus the values the engine knows: stage names for `--force`/`--until`, figures for `--sort`
 * and `--metric`, `local|slurm` for `--executor`, the config's fields for `--set` and bare
 * `key=value`, run names (read when you press tab) for the commands that take a run, every
 * task of deno.json, and any `[--opt a|b|c]` in a usage line.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { optionsOf } from "./completions.ts";
 * const o = optionsOf("usage: x [--format onnx|tfjs|web] [--n N]\n  -m, --multirun  yes");
 * assert.deepEqual(o.names, ["--format", "--n", "-m", "--multirun", "--help"]);
 * assert.deepEqual(o.values["--format"], ["onnx", "tfjs", "web"]);
 * ```
 */
import type { App } from "./app.ts";
import { parseCommand } from "./args.ts";
import { UsageError } from "./errors.ts";
import { leafPaths } from "./config.ts";

const USAGE = `usage: deno task completions bash|zsh|fish
  prints a completion script for deno task's commands; install it with, e.g.
    bash: deno task -q completions bash > ~/.local/share/bash-completion/completions/deno
    zsh:  deno task -q completions zsh > ~/.zfunc/_deno_tasks; source it from ~/.zshrc
    fish: deno task -q completions fish > ~/.config/fish/completions/deno.fish`;

/** A command's options and the values some of them take. */
export interface CommandOptions {
  names: string[];
  values: Record<string, string[]>;
}

/** The options a usage text names, and the `[--opt a|b|c]` choices it lists. */
export function optionsOf(usage: string): CommandOptions {
  const names: string[] = [];
  for (const m of usage.matchAll(/(?:^|[\s[,])(--?[a-z][a-z-]*)/g)) {
    if (!names.includes(m[1])) names.push(m[1]);
  }
  if (!names.includes("--help")) names.push("--help");
  const values: Record<string, string[]> = {};
  for (const m of usage.matchAll(/\[(--[a-z-]+) ([a-z0-9]+(?:\|[a-z0-9]+)+)\]/g)) {
    values[m[1]] = m[2].split("|");
  }
  return { names, values };
}

/** What every command takes, by name; `runs`: its positionals are run names. */
export type CommandTable = Record<
  string,
  CommandOptions & { positionals?: string[]; runs?: boolean }
>;

/** The commands whose positionals are runs of the results folder. */
const RUN_COMMANDS = ["diff", "tag", "sample", "export"];

/** The table of an application's commands, from their usage texts. */
export function commandTable(
  app: App,
  usages: Record<string, string>,
  tasks: string[] = [],
): CommandTable {
  const stages = app.stages.map((s) => s.name);
  const table: CommandTable = {};
  for (const [cmd, usage] of Object.entries(usages)) {
    const o = optionsOf(usage);
    const known: Record<string, string[]> = {
      "--force": [...stages, "all"],
      "--until": stages,
      "--sort": [...app.sweep.rankMetrics],
      "--metric": [...app.sweep.rankMetrics],
      "--executor": ["local", "slurm"],
      "--search": ["halving"],
    };
    for (const [k, v] of Object.entries(known)) if (o.names.includes(k)) o.values[k] = v;
    table[cmd] = o;
  }
  if (table.completions) table.completions.positionals = ["bash", "zsh", "fish"];
  if (table.sweep) table.sweep.positionals = ["status", "cancel"];
  const keys = leafPaths(app.config.schema).map((k) => `${k}=`);
  if (table.run) {
    table.run.values["--set"] = keys;
    table.run.positionals = keys; // Hydra's bare key=value after the config
  }
  for (const cmd of RUN_COMMANDS) if (table[cmd]) table[cmd].runs = true;
  for (const t of tasks) {
    // a task of deno.json that is not a command (explain is run --explain; test, bench, ...)
    table[t] ??= t === "explain" && table.run ? { ...table.run } : { names: [], values: {} };
  }
  return table;
}

const words = (xs: string[]) => xs.join(" ");

/** The bash script (zsh runs it through bashcompinit). */
export function bashScript(table: CommandTable, app: string): string {
  // the function's name is the application's, so two applications' scripts can coexist
  const fn = `${app.replace(/[^A-Za-z0-9]/g, "_")}_tasks`;
  const cases = Object.entries(table).map(([cmd, o]) => {
    const vals = Object.entries(o.values).map(([opt, v]) =>
      `        ${opt}) COMPREPLY=($(compgen -W "${words(v)}" -- "$cur")); _${fn}_nospace; return ;;`
    );
    return `    ${cmd})
      case "$prev" in
${vals.join("\n")}
      esac
      opts="${words(o.names)}"; pos="${words(o.positionals ?? [])}"${
      o.runs ? `; pos="$pos $(command ls -1 "$results/runs" 2>/dev/null)"` : ""
    } ;;`;
  });
  return `# deno task completions for ${
    Object.keys(table).length
  } commands (made by: deno task completions bash)
_${fn}() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]} opts="" pos=""
  if [[ \${COMP_WORDS[1]} != task ]]; then
    if declare -F _deno >/dev/null; then _deno "$@"; fi
    return
  fi
  local i=2 j results=results
  while [[ \${COMP_WORDS[i]} == -* && $i -lt $COMP_CWORD ]]; do ((i++)); done
  for ((j = i; j < COMP_CWORD; j++)); do
    [[ \${COMP_WORDS[j]} == --results ]] && results=\${COMP_WORDS[j+1]}
  done
  if [[ $COMP_CWORD -eq $i ]]; then
    COMPREPLY=($(compgen -W "${words(Object.keys(table))}" -- "$cur"))
    return
  fi
  case \${COMP_WORDS[i]} in
${cases.join("\n")}
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$pos" -- "$cur") $(compgen -f -- "$cur"))
  fi
  _${fn}_nospace
}
# a lone key= completion waits for its value
_${fn}_nospace() {
  if [[ \${#COMPREPLY[@]} -eq 1 && \${COMPREPLY[0]} == *= ]]; then
    compopt -o nospace 2>/dev/null
  fi
}
complete -o filenames -F _${fn} deno
`;
}

/** The zsh script: the bash one through zsh's bashcompinit. */
export function zshScript(table: CommandTable, app: string): string {
  return `# deno task completions (made by: deno task completions zsh)
autoload -U +X compinit && compinit
autoload -U +X bashcompinit && bashcompinit
${bashScript(table, app).split("\n").slice(1).join("\n")}`;
}

/** The fish script. */
export function fishScript(table: CommandTable): string {
  const cmds = Object.keys(table);
  const lines = [
    "# deno task completions (made by: deno task completions fish)",
    "# this file shadows fish's own deno completions: load them first",
    "if test -f $__fish_data_dir/completions/deno.fish",
    "  source $__fish_data_dir/completions/deno.fish",
    "end",
    `complete -c deno -n '__fish_seen_subcommand_from task; and not __fish_seen_subcommand_from ${
      words(cmds)
    }' -f -a '${words(cmds)}'`,
  ];
  for (const [cmd, o] of Object.entries(table)) {
    const when = `__fish_seen_subcommand_from task; and __fish_seen_subcommand_from ${cmd}`;
    for (const name of o.names) {
      const flag = name.startsWith("--") ? `-l ${name.slice(2)}` : `-s ${name.slice(1)}`;
      const v = o.values[name];
      lines.push(`complete -c deno -n '${when}' ${flag}${v ? ` -x -a '${words(v)}'` : ""}`);
    }
    if (o.positionals) lines.push(`complete -c deno -n '${when}' -a '${words(o.positionals)}'`);
    if (o.runs) {
      lines.push(`complete -c deno -n '${when}' -a '(command ls -1 results/runs 2>/dev/null)'`);
    }
  }
  return lines.join("\n") + "\n";
}

/** The task names of the deno.json in the working folder (none when it has none). */
async function denoTasks(): Promise<string[]> {
  try {
    const json = JSON.parse(await Deno.readTextFile("deno.json"));
    return Object.keys(json.tasks ?? {});
  } catch {
    return [];
  }
}

/** `deno task completions SHELL`; `usages` gives each command's --help text. */
export async function completionsCommand(
  app: App,
  args: string[],
  usages: () => Promise<Record<string, string>>,
): Promise<number> {
  const parsed = parseCommand(args, USAGE, {}, { positionals: true });
  if (!parsed) return 0;
  const [shell, ...extra] = parsed.positionals;
  if (!shell || extra.length) throw new UsageError("expected one shell: bash, zsh or fish", USAGE);
  const table = commandTable(app, { ...(await usages()), completions: USAGE }, await denoTasks());
  const script = { bash: bashScript, zsh: zshScript, fish: fishScript }[shell];
  if (!script) throw new UsageError(`${shell}: expected bash, zsh or fish`, USAGE);
  console.log(script(table, app.name));
  return 0;
}
