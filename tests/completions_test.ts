/**
 * `deno task completions bash|zsh|fish`: each script loads in its shell and completes commands,
 * options and option values (made from each command's --help, so a new option shows up).
 * A shell that is not installed is skipped, saying so, except in CI (.ci/run installs them).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cli } from "./helpers.ts";

function has(shell: string): boolean {
  try {
    new Deno.Command(shell, { args: ["-c", "true"], stdout: "null", stderr: "null" }).outputSync();
    return true;
  } catch {
    if (Deno.env.get("CI")) {
      throw new Error(`CI must test ${shell} completions: .ci/run installs it`);
    }
    console.error(`completions_test: no ${shell}; skipping its test (apt-get install ${shell})`);
    return false;
  }
}

async function script(shell: string): Promise<string> {
  const r = await cli(["completions", shell]);
  assert.equal(r.code, 0, r.stderr);
  const dir = await Deno.makeTempDir();
  const path = join(dir, shell === "fish" ? "deno.fish" : `deno.${shell}`);
  await Deno.writeTextFile(path, r.stdout);
  return path;
}

/** A folder with two runs in results/runs, where the shells complete (no other files). */
const WORK = await Deno.makeTempDir();
for (const r of ["quick-aaa111", "quick-bbb222"]) {
  await Deno.mkdir(join(WORK, "results", "runs", r), { recursive: true });
}

async function sh(shell: string, code: string): Promise<string> {
  const out = await new Deno.Command(shell, {
    args: ["-c", code],
    cwd: WORK,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr) + text);
  return text;
}

/** Commands typed so far -> the completions each must offer. */
const CASES: [string, string[]][] = [
  ["deno task exp", ["explain", "export"]],
  ["deno task export --fo", ["--format"]],
  ["deno task export --format ", ["onnx", "tfjs", "web"]],
  ["deno task run x --until train_", ["train_police", "train_counterfeiter"]],
  ["deno task sweep --exe", ["--executor"]],
  ["deno task runs --sort goal", ["goalMarksMet", "goalMiss"]],
  // run names, read from results/runs when tab is pressed
  ["deno task diff quick-a", ["quick-aaa111"]],
  ["deno task sample quick-", ["quick-aaa111", "quick-bbb222"]],
  // the config's fields, for --set and for Hydra's bare key=value
  ["deno task run x --set optimizer.learningR", ["optimizer.learningRate="]],
  ["deno task run x adversarial.iter", ["adversarial.iterations="]],
  // every task of deno.json, and explain takes run's options
  ["deno task expl", ["explain"]],
  ["deno task explain x --unt", ["--until"]],
];

Deno.test({
  name: "bash completes commands, options and their values",
  ignore: !has("bash"),
  fn: async () => {
    const path = await script("bash");
    for (const [typed, want] of CASES) {
      const words = typed.split(" ").map((w) => `'${w}'`).join(" ");
      const got = await sh(
        "bash",
        `source ${path}; COMP_WORDS=(${words}); COMP_CWORD=$((\${#COMP_WORDS[@]}-1)); _gan_pipeline_tasks; printf '%s\\n' "\${COMPREPLY[@]}"`,
      );
      assert.deepEqual(got.trim().split("\n").sort(), [...want].sort(), typed);
    }
  },
});

Deno.test({
  name: "fish completes commands, options and their values",
  ignore: !has("fish"),
  fn: async () => {
    const path = await script("fish");
    for (const [typed, want] of CASES) {
      const got = await sh(
        "fish",
        `set -p fish_complete_path ${join(path, "..")}; complete -C '${typed}'`,
      );
      const offered = got.trim().split("\n").map((l) => l.split("\t")[0]);
      for (const w of want) assert(offered.includes(w), `${typed}: ${offered.join(" ")}`);
    }
  },
});

Deno.test({
  name: "zsh loads the script and registers it for deno (through bashcompinit)",
  ignore: !has("zsh"),
  fn: async () => {
    const path = await script("zsh");
    const got = await sh("zsh", `source ${path}; print -r -- $_comps[deno]`);
    assert.match(got, /_bash_complete .*-F _gan_pipeline_tasks/);
  },
});

Deno.test("completions names the shells it knows (exit 2)", async () => {
  const r = await cli(["completions", "tcsh"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /tcsh: expected bash, zsh or fish\nusage: deno task completions/);
});
