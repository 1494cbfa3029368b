/** The git commit and dirty flag of the working tree, for the run record. */
import { fileURLToPath } from "node:url";

/** Commit and dirty flag, or nulls when git or the repository is unavailable. */
export async function gitState(): Promise<{ commit: string | null; dirty: boolean | null }> {
  const cwd = fileURLToPath(new URL("..", import.meta.url));
  const git = async (...args: string[]) => {
    const out = await new Deno.Command("git", { args, cwd, stdout: "piped", stderr: "null" })
      .output();
    if (!out.success) throw new Error("git failed");
    return new TextDecoder().decode(out.stdout).trim();
  };
  try {
    const commit = await git("rev-parse", "HEAD");
    const dirty = (await git("status", "--porcelain", "--untracked-files=no")).length > 0;
    return { commit, dirty };
  } catch {
    return { commit: null, dirty: null };
  }
}
