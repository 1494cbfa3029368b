/**
 * `deno task ui` started as a child process on a free port, for the dashboard's benchmark,
 * screenshots and tests: its address, and a way to stop it.
 */
import { join } from "node:path";

/** Starts the ui over `results`; resolves once it prints its address. */
export async function startUiProcess(root: string, results: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(root, "stages/app.ts"), "ui", "--results", results, "--port", "0"],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!/http:\/\/\S+\//.test(out)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the ui did not start: ${out}`);
    out += value;
  }
  reader.cancel().catch(() => {});
  return {
    base: out.match(/(http:\/\/\S+)\//)![1],
    stop: async () => {
      try {
        child.kill();
      } catch {
        // gone already
      }
      await child.status;
    },
  };
}
