/**
 * `deno task bench --backend webgpu`: the lecture's adversarial loop (the baseline config:
 * 500-row batches, 32 + 16 minibatch steps, the five D measurements) on the webgpu path, as
 * iterations per second on the machine's adapter, beside fast-cpu's in the same run. The
 * share of dispatch overhead is measured, not guessed: the same loop with every layer one
 * unit wide (the same dispatches, almost no arithmetic) against the real one.
 */
import { join } from "node:path";
import { selectBackend } from "../backends/mod.ts";
import { cpuModel } from "../backends/cpu_info.ts";
import { Rng } from "../../pipeline/rng.ts";
import { type Config, resolveConfig } from "../schema.ts";
import { makeGan } from "../training/gan.ts";
import { GpuPath } from "../training/gpu_path.ts";
import { adversarialIterations } from "../training/loop.ts";
import { initNets } from "../training/nets.ts";
import { streamsFor } from "../training/streams.ts";
import type { HistoryRow } from "../vocabulary.ts";

/** The lecture's iteration counts the goals are stated for. */
export const GPU_GOALS = { lectureIterations: 500, lectureSeconds: 24, recipeIterations: 3600 };

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Worker: `iters` timed iterations (after `warmup`) of the baseline loop on `backend`, the
 * nets one unit wide when `tiny`; prints one JSON line.
 */
export async function gpuLoopWorker(
  root: string,
  backend: "webgpu" | "fast-cpu",
  iters: number,
  warmup: number,
  tiny: boolean,
  mnist: () => Promise<Float32Array>,
  profile = false,
): Promise<void> {
  const choice = await selectBackend(backend);
  const base = await resolveConfig(join(root, "configs/baseline.json"));
  const narrow = <N extends { hidden: number[] }>(n: N): N => ({
    ...n,
    hidden: n.hidden.map(() => 1),
  });
  const cfg: Config = tiny
    ? {
      ...base,
      model: {
        ...base.model,
        police: narrow(base.model.police),
        counterfeiter: narrow(base.model.counterfeiter),
      },
    }
    : base;
  const dim = tiny ? 1 : 784;
  const train = tiny ? new Rng(1).uniforms(60000) : await mnist();
  const { g, d } = initNets(cfg, dim, new Rng(cfg.seed, 1), new Rng(cfg.seed, 2));
  const gan = makeGan(cfg, g, d, streamsFor(cfg, "adversarial"));
  const history: HistoryRow[] = [];
  await adversarialIterations(gan, cfg.adversarial, { train, dim, to: warmup, history });
  const gpu = profile && gan.path instanceof GpuPath ? gan.path : null;
  gpu?.startProfile();
  await adversarialIterations(gan, cfg.adversarial, {
    train,
    dim,
    from: warmup,
    to: warmup + iters,
    history,
  });
  const kernels = gpu ? [...(await gpu.stopProfile()).entries()] : null;
  gan.path.dispose();
  console.log(JSON.stringify({
    backend: choice.runtime.facts.backend,
    path: gan.path.kind,
    notes: choice.notes,
    times: history.slice(warmup).map((r) => r.seconds),
    kernels,
  }));
}

/** The profile's table: kernels by GPU time, the largest first, with their share. */
export function profileTable(kernels: [string, { calls: number; ms: number }][]): string[] {
  const total = kernels.reduce((s, [, k]) => s + k.ms, 0);
  const rows = [...kernels].sort((a, b) => b[1].ms - a[1].ms);
  return [
    `  GPU time by kernel (one iteration, a pass each; ${total.toFixed(1)} ms in kernels):`,
    ...rows.slice(0, 15).map(([name, k]) =>
      `    ${name.padEnd(22)} ${String(k.calls).padStart(5)} calls ${
        k.ms.toFixed(2).padStart(9)
      } ms ${(100 * k.ms / total).toFixed(1).padStart(5)}%`
    ),
  ];
}

/** The table: webgpu's lecture loop, its overhead share, fast-cpu's beside it. */
export async function gpuMain(
  iters: number,
  sub: (args: string[]) => Promise<Record<string, unknown> | null>,
): Promise<Record<string, unknown>> {
  console.log(`CPU: ${cpuModel()}`);
  const run = (backend: string, tiny: boolean) =>
    sub(["--gpu-loop", String(iters), "--gpu-backend", backend, ...(tiny ? ["--gpu-tiny"] : [])]);
  const full = await run("webgpu", false);
  if (!full) throw new Error("the webgpu loop did not run (is there a WebGPU adapter?)");
  const tiny = await run("webgpu", true);
  const cpu = await run("fast-cpu", false);
  const profiled = await sub(["--gpu-loop", "1", "--gpu-backend", "webgpu", "--gpu-profile"]);
  const s = median(full.times as number[]);
  const overhead = tiny ? median(tiny.times as number[]) : null;
  const cpuS = cpu ? median(cpu.times as number[]) : null;
  const { lectureIterations: li, lectureSeconds, recipeIterations: ri } = GPU_GOALS;
  console.log(`webgpu: ${full.backend}`);
  for (const n of full.notes as string[]) console.log(`  note: ${n}`);
  console.log(
    `  lecture iteration (baseline, median of ${iters}): ${s.toFixed(3)} s, ${
      (1 / s).toFixed(2)
    } it/s; ${li} iterations ${(li * s).toFixed(0)} s (goal <= ${lectureSeconds} s: ${
      li * s <= lectureSeconds ? "met" : "not met"
    }), ${ri} iterations ${(ri * s / 60).toFixed(1)} min (goal <= 3 min: ${
      ri * s <= 180 ? "met" : "not met"
    })`,
  );
  if (overhead !== null) {
    console.log(
      `  dispatch overhead (the same loop, every layer one unit wide): ${overhead.toFixed(3)} s, ${
        (100 * overhead / s).toFixed(0)
      }% of the iteration; arithmetic ${(100 * (1 - overhead / s)).toFixed(0)}%`,
    );
  }
  const kernels = profiled?.kernels as [string, { calls: number; ms: number }][] | null;
  if (kernels) { for (const line of profileTable(kernels)) console.log(line); }
  else console.log("  (no GPU profile: the device has no timestamp queries)");
  if (cpuS !== null) {
    console.log(
      `fast-cpu (${cpu!.backend}): ${cpuS.toFixed(3)} s an iteration; webgpu/fast-cpu ${
        (s / cpuS).toFixed(2)
      }x the time`,
    );
  }
  return {
    date: new Date().toISOString(),
    cpu: cpuModel(),
    adapter: full.backend,
    iterations: iters,
    secondsPerIteration: { webgpu: s, webgpuOneUnitWide: overhead, fastCpu: cpuS },
    times: { webgpu: full.times, webgpuOneUnitWide: tiny?.times, fastCpu: cpu?.times },
    kernels: kernels ?? null,
  };
}
