/**
 * Code in the key, on a copy of the project: an edit reruns exactly the stages whose import
 * graph holds the file (and what their new outputs feed), an unrelated edit reruns nothing,
 * a behaviour-preserving edit upstream stops at that stage (early cutoff), and explain names
 * the file.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { codeDigest, importsOf } from "../pipeline/code_digest.ts";
import { RUN_PERMISSIONS } from "../pipeline/sweep/point.ts";
import { ROOT, tinyConfig, writeConfig, writeIdxFiles } from "./helpers.ts";

/** Copies the code of the project (not its results) to a temporary folder. */
async function copyProject(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "gan-code-" });
  const copy = async (from: string, to: string) => {
    for await (const e of Deno.readDir(from)) {
      const [s, d] = [join(from, e.name), join(to, e.name)];
      if (e.isDirectory) {
        await Deno.mkdir(d);
        await copy(s, d);
      } else if (e.isFile) await Deno.copyFile(s, d);
    }
  };
  for (const part of ["pipeline", "stages"]) {
    await Deno.mkdir(join(dir, part));
    await copy(join(ROOT, part), join(dir, part));
  }
  for (const f of ["deno.json", "deno.lock"]) await Deno.copyFile(join(ROOT, f), join(dir, f));
  await Deno.symlink(join(ROOT, "node_modules"), join(dir, "node_modules"));
  return dir;
}

async function runCopy(project: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...RUN_PERMISSIONS, join(project, "stages/app.ts"), ...args],
    cwd: project,
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, text);
  return text;
}

/** The stages that ran in a run's log, and each cached stage's line. */
function ran(log: string): string[] {
  return [...log.matchAll(/^\[(\w+)\] running: /gm)].map((m) => m[1]);
}

async function edit(project: string, file: string, from: string, to: string) {
  const p = join(project, file);
  const text = await Deno.readTextFile(p);
  assert(text.includes(from), `${file} holds ${from}`);
  await Deno.writeTextFile(p, text.replace(from, to));
}

Deno.test("importsOf follows runtime imports and leaves out type-only ones and doc examples", () => {
  const src = [
    `import { a } from "./a.ts";`,
    `import type { B } from "./b.ts";`,
    `export type { C } from "./c.ts";`,
    `export { d } from "./d.ts";`,
    `import {\n  e,\n  type E2,\n} from "./e.ts";`,
    `import "./side.ts";`,
    ` * import { doc } from "./doc.ts";`,
    `const m = await import("./lazy.ts");`,
  ].join("\n");
  assert.deepEqual(importsOf(src).sort(), ["./a.ts", "./d.ts", "./e.ts", "./lazy.ts", "./side.ts"]);
});

Deno.test("a stage's code digest holds its import graph and the packages it reaches", async () => {
  const url = (p: string) => new URL(p, `file://${ROOT}`).href;
  const evaluate = await codeDigest([url("stages/evaluate.ts")]);
  assert("stages/evaluation/metrics.ts" in evaluate.files);
  assert("@tensorflow/tfjs-core@4.22.0" in evaluate.packages);
  assert.match(evaluate.packages["@tensorflow/tfjs-core@4.22.0"], /^sha512-/);
  const preprocess = await codeDigest([url("stages/preprocess.ts")]);
  assert(!("stages/evaluation/metrics.ts" in preprocess.files));
  assert(!("pipeline/store.ts" in preprocess.files), "type-only imports are not code");
  const report = await codeDigest([url("stages/report.ts")], { packages: ["dejavu-fonts-ttf"] });
  assert("dejavu-fonts-ttf@2.37.3" in report.packages, "a package read as data joins the key");
});

Deno.test("an edit reruns exactly the stages that run the edited code, and explain names it", async () => {
  const project = await copyProject();
  const dir = await Deno.makeTempDir();
  const files = await writeIdxFiles(dir);
  const cfg = await writeConfig(dir, "tiny", tinyConfig(files));
  const results = join(dir, "results");
  const base = ["run", cfg, "--results", results];
  try {
    assert.equal(ran(await runCopy(project, base)).length, 8);

    // a module no stage imports: nothing reruns
    await edit(project, "pipeline/runs_cli.ts", "/**", "// an unrelated edit\n/**");
    const unrelated = await runCopy(project, base);
    assert.deepEqual(ran(unrelated), []);
    assert.match(unrelated, /all 8 stages cached; nothing ran/);

    // a metric's code: explain names the file; evaluate reruns, and the report its outputs feed
    await edit(
      project,
      "stages/evaluation/metrics.ts",
      "return hist.filter((c) => c / total >= minShare).length;",
      "return hist.filter((c) => c / total >= minShare).length + 1;",
    );
    const explain = await runCopy(project, [...base, "--explain"]);
    assert.match(
      explain,
      /evaluate\s+\w+\s+runs because code changed: stages\/evaluation\/metrics\.ts/,
    );
    assert.match(explain, /report\s+\(pending\)\s+runs because waits for evaluate/);
    assert.match(explain, /adversarial\s+\w+\s+cached/);
    const metric = await runCopy(project, base);
    assert.deepEqual(ran(metric), ["evaluate", "report"]);
    assert.match(metric, /\[report\] running: upstream evaluate produced new outputs/);

    // a behaviour-preserving edit upstream: preprocess reruns, its outputs are the same bits,
    // so nothing downstream does
    await edit(
      project,
      "stages/preprocess.ts",
      "/** The preprocess stage. */",
      "/** Preprocess. */",
    );
    const cutoff = await runCopy(project, base);
    assert.deepEqual(ran(cutoff), ["preprocess"]);
    assert.match(cutoff, /\[preprocess\] running: code changed: stages\/preprocess\.ts/);
    assert.match(
      cutoff,
      /\[train_police\] upstream preprocess reran with the same outputs: cached/,
    );

    // the run record keeps each stage's recipe
    const runs = [...Deno.readDirSync(join(results, "runs"))];
    const record = JSON.parse(
      await Deno.readTextFile(join(results, "runs", runs[0].name, "run.json")),
    );
    const evaluate = record.stages.find((s: { stage: string }) => s.stage === "evaluate");
    assert.equal(evaluate.inputs.code.files["stages/evaluation/metrics.ts"].length, 64);
    assert.equal(typeof evaluate.inputs.upstream.adversarial, "string");
  } finally {
    await Deno.remove(project, { recursive: true }).catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
