/**
 * `deno task bench --sweep`: sweep throughput on this machine. For 1..C jobs on C cores (the
 * threads per point the sweep picks: C / jobs, at least 1), points per hour of a sweep over
 * `configs/quick.json` (fresh seeds, so every point computes; data and the evaluator are
 * computed once beforehand per thread count), against the ideal: as many points at once as the
 * cores hold, each at the rate one point has alone on that many threads.
 */
import { join } from "node:path";
import { threadsPerPoint } from "../../pipeline/sweep/cli.ts";

/** One measurement: `points` points, `jobs` at once, `threads` each; seconds of wall time. */
async function timeSweep(
  root: string,
  results: string,
  { jobs, threads, seeds }: { jobs: number; threads: number; seeds: number[] },
): Promise<number> {
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(root, "stages/app.ts"),
      "sweep",
      "--base",
      join(root, "configs/quick.json"),
      "-m",
      `seed=${seeds.join(",")}`,
      "--name",
      `bench-j${jobs}-t${threads}-s${seeds[0]}`,
      "--jobs",
      String(jobs),
      "--threads-per-point",
      String(threads),
      "--results",
      results,
    ],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.code !== 0) {
    throw new Error(`the sweep failed: ${new TextDecoder().decode(out.stderr).slice(-2000)}`);
  }
  return (performance.now() - t0) / 1000;
}

/** A row of the throughput table. */
export interface SweepBenchRow {
  jobs: number;
  threadsPerPoint: number;
  points: number;
  seconds: number;
  pointsPerHour: number;
  /** min(jobs, cores / threads) x one point's rate alone on `threadsPerPoint` threads. */
  idealPointsPerHour: number;
  fractionOfIdeal: number;
}

/** Runs the sweep benchmark; returns its rows (printed as it goes). */
export async function sweepBench(root: string, results: string): Promise<SweepBenchRow[]> {
  const cores = navigator.hardwareConcurrency;
  let seed = 1000;
  const fresh = (n: number) => Array.from({ length: n }, () => seed++);
  const plans = Array.from({ length: cores }, (_, i) => ({
    jobs: i + 1,
    threads: threadsPerPoint(cores, i + 1),
  }));
  const threadCounts = [...new Set(plans.map((p) => p.threads))];
  console.log(`sweep throughput, configs/quick.json points, ${cores} cores`);
  for (const t of threadCounts) {
    // the shared stages (data, evaluator: keyed by thread count) computed before any timing
    await timeSweep(root, results, { jobs: 1, threads: t, seeds: fresh(1) });
  }
  const alone = new Map<number, number>();
  for (const t of threadCounts) {
    const n = 2;
    alone.set(
      t,
      (3600 * n) / (await timeSweep(root, results, { jobs: 1, threads: t, seeds: fresh(n) })),
    );
    console.log(`  one point at a time on ${t} thread(s): ${alone.get(t)!.toFixed(0)} points/hour`);
  }
  const rows: SweepBenchRow[] = [];
  console.log(
    `${"jobs".padStart(5)}${"threads".padStart(9)}${"points".padStart(8)}${"s".padStart(8)}${
      "points/h".padStart(10)
    }${"ideal".padStart(8)}${"of ideal".padStart(10)}`,
  );
  for (const { jobs, threads } of plans) {
    const points = 2 * jobs;
    const seconds = jobs === 1
      ? (3600 * points) / alone.get(threads)!
      : await timeSweep(root, results, { jobs, threads, seeds: fresh(points) });
    const pointsPerHour = (3600 * points) / seconds;
    const ideal = Math.min(jobs, Math.floor(cores / threads)) * alone.get(threads)!;
    const row = {
      jobs,
      threadsPerPoint: threads,
      points,
      seconds,
      pointsPerHour,
      idealPointsPerHour: ideal,
      fractionOfIdeal: pointsPerHour / ideal,
    };
    rows.push(row);
    console.log(
      `${String(jobs).padStart(5)}${String(threads).padStart(9)}${String(points).padStart(8)}${
        seconds.toFixed(1).padStart(8)
      }${pointsPerHour.toFixed(0).padStart(10)}${ideal.toFixed(0).padStart(8)}${
        (100 * row.fractionOfIdeal).toFixed(0).padStart(9)
      }%`,
    );
  }
  const one = rows[0], all = rows.at(-1)!;
  console.log(
    `${all.jobs} jobs give ${
      (all.pointsPerHour / one.pointsPerHour).toFixed(2)
    }x the points per hour of 1 job`,
  );
  return rows;
}
