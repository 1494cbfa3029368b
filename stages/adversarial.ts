/**
 * Stage `adversarial`: the lecture's loop. Each iteration draws fresh noise, makes fakes,
 * draws real rows with replacement, fits the police one epoch on real(1)+fake(0) with
 * dropout on, then fits the counterfeiter one epoch on the same noise with target 1 through
 * the police in inference mode. A checkpoint every `checkpointEvery` iterations makes an
 * interrupted run resume, with the same numbers as one that never stopped.
 *
 * Writes `police/`, `counterfeiter/`, `history.json` (one row per iteration; the seconds
 * each took in `timing.json`) and
 * `checkpoints/iter_NNNNNN/{counterfeiter,police}/` (for evaluation over time).
 */
import { join } from "node:path";
import { readNpyF32 } from "./formats/npy.ts";
import type { Progress } from "../pipeline/progress.ts";
import type { Stage } from "../pipeline/stage.ts";
import type { ResumableState } from "../pipeline/resumable.ts";
import type { Config } from "./schema.ts";
import { type Gan, makeGan } from "./training/gan.ts";
import { loadNet, saveNet } from "./formats/model_io.ts";
import { gridPng } from "./formats/png.ts";
import { clip01, disposeNet, fromUnitScale, inferImages, toUnitScale } from "./training/nets.ts";
import { STREAM, streamsFor, streamsFromState, streamsState } from "./training/streams.ts";
import type { LiveLog } from "../pipeline/live.ts";
import { Rng } from "../pipeline/rng.ts";
import { adversarialIterations, type LoopRange } from "./training/loop.ts";
import { WeightAverage } from "./training/ema.ts";
import { type Net, variablesOf } from "./training/nets.ts";
import { pickPaths } from "../pipeline/pick.ts";
import {
  ARTIFACT,
  artifact,
  checkpointIterations,
  GRID_IMAGES,
  type HistoryRow,
  iterName,
} from "./vocabulary.ts";

/**
 * Calls `use` with the counterfeiter that samples: the weight average when there is one (a
 * net made for the call and freed after it), else the trained net.
 */
async function withSampler<T>(gan: Gan, use: (g: Net) => Promise<T>): Promise<T> {
  if (!gan.average) return use(gan.g);
  const g = gan.average.toNet(gan.g);
  try {
    return await use(g);
  } finally {
    disposeNet(g);
  }
}

/**
 * Saves a checkpoint; `sampler` is the counterfeiter that samples (the weight average's net, or
 * `gan.g` without one), made once by the caller for the snapshot, the state and the live grid.
 * The snapshot is what the entry keeps for evaluation; the state is what a resume reads.
 */
function saveCheckpoint(
  resume: ResumableState,
  gan: Gan,
  sampler: Net,
  iteration: number,
  history: HistoryRow[],
): Promise<void> {
  return resume.save(iteration, {
    snapshot: iterName(iteration),
    async writeSnapshot(dir) {
      await saveNet(artifact(dir, "counterfeiter"), sampler);
      await saveNet(artifact(dir, "police"), gan.d);
    },
    async writeState(dir) {
      await saveNet(artifact(dir, "police"), gan.d, gan.optD.state());
      await saveNet(artifact(dir, "counterfeiter"), gan.g, gan.optG.state());
      if (sampler !== gan.g) await saveNet(join(dir, EMA_STATE), sampler);
      await Deno.writeTextFile(artifact(dir, "history"), JSON.stringify(history));
      await Deno.writeTextFile(artifact(dir, "rng"), JSON.stringify(streamsState(gan.streams)));
    },
  });
}

/**
 * Makes a finished entry of `length` iterations the resumable state, with the snapshots a run
 * of the new length would also have taken; the loop then continues it.
 */
async function seedFromEntry(
  resume: ResumableState,
  entry: string,
  length: number,
  a: Config["adversarial"],
): Promise<void> {
  const keep = new Set(checkpointIterations(a.iterations, a.checkpointEvery));
  const snapshots: Record<string, string> = {};
  for await (const e of Deno.readDir(artifact(entry, "checkpoints"))) {
    if (keep.has(Number(e.name.replace(/^iter_/, "")))) {
      snapshots[e.name] = `checkpoints/${e.name}`;
    }
  }
  // with a weight average the entry's counterfeiter/ is the average, the trained net apart
  const links: Record<string, string> = a.ema !== null
    ? {
      police: ARTIFACT.police,
      counterfeiter: ARTIFACT.counterfeiterTrained,
      [EMA_STATE]: ARTIFACT.counterfeiter,
    }
    : { police: ARTIFACT.police, counterfeiter: ARTIFACT.counterfeiter };
  await resume.seed(length, {
    entry,
    links: { ...links, [ARTIFACT.rng]: ARTIFACT.rng },
    texts: { [ARTIFACT.history]: JSON.stringify(await readHistory(entry)) },
    snapshots,
  });
}

/**
 * A finished entry's history with each row's seconds put back: `history.json` holds the
 * numbers that must repeat bit for bit, `timing.json` the wall-clock seconds, which never
 * repeat (so they stay out of the digest downstream keys use).
 */
export async function readHistory(entry: string): Promise<HistoryRow[]> {
  const rows: HistoryRow[] = JSON.parse(await Deno.readTextFile(artifact(entry, "history")));
  const { seconds } = JSON.parse(await Deno.readTextFile(artifact(entry, "timing")));
  return rows.map((r, i) => ({ ...r, seconds: seconds[i] }));
}

/** The weight average in a resumable state. */
const EMA_STATE = "counterfeiter_ema";

/** The adversarial stage. */
export const adversarialStage: Stage<Config> = {
  name: "adversarial",
  code: import.meta.url,
  volatile: [ARTIFACT.timing],
  needs: ["preprocess", "train_police", "train_counterfeiter"],
  usesRuntime: true,
  doc: "the adversarial loop, with checkpoints",
  continues: {
    length: (p) => (p as { adversarial: { iterations: number } }).adversarial.iterations,
    without: (p) => {
      const picked = p as { adversarial: Record<string, unknown> };
      return { ...picked, adversarial: { ...picked.adversarial, iterations: null } };
    },
  },
  outputs: (cfg) => {
    const net = (dir: string) => [`${dir}/model.json`, `${dir}/weights.bin`];
    return [
      ARTIFACT.rng,
      ...net(ARTIFACT.police),
      ...net(ARTIFACT.counterfeiter),
      ...(cfg.adversarial.ema !== null ? net(ARTIFACT.counterfeiterTrained) : []),
      ARTIFACT.history,
      ARTIFACT.timing,
      ...checkpointIterations(cfg.adversarial.iterations, cfg.adversarial.checkpointEvery)
        .flatMap((i) =>
          [ARTIFACT.police, ARTIFACT.counterfeiter].map((n) =>
            `${ARTIFACT.checkpoints}/${iterName(i)}/${n}/weights.bin`
          )
        ),
    ];
  },
  // the nets and their optimizer state come from the warm-up stages' outputs
  pick: (cfg) => pickPaths(cfg, ["seed", "model.pixelScale", "optimizer", "loss", "adversarial"]),
  async run({ cfg, inputs, outDir, resume, progress, live, continueFrom }) {
    const train = await readNpyF32(artifact(inputs.preprocess, "trainX"));
    const dim = train.shape[1];
    let resumeAt = await resume.recover();
    if (resumeAt === null && continueFrom) {
      await seedFromEntry(resume, continueFrom.dir, continueFrom.length, cfg.adversarial);
      resumeAt = continueFrom.length;
      progress.log(`  continuing the cached ${continueFrom.length}-iteration run`);
    }
    const src = resumeAt !== null
      ? {
        police: artifact(resume.dir, "police"),
        counterfeiter: artifact(resume.dir, "counterfeiter"),
      }
      : {
        police: artifact(inputs.train_police, "police"),
        counterfeiter: artifact(inputs.train_counterfeiter, "counterfeiter"),
      };
    const d = await loadNet(src.police);
    const g = await loadNet(src.counterfeiter);
    const history: HistoryRow[] = [];
    let streams = streamsFor(cfg, "adversarial");
    if (resumeAt !== null) {
      history.push(...JSON.parse(await Deno.readTextFile(artifact(resume.dir, "history"))));
      streams = streamsFromState(
        JSON.parse(await Deno.readTextFile(artifact(resume.dir, "rng"))),
      );
      progress.log(`  resuming from the checkpoint at iteration ${resumeAt}`);
    }
    const average = await weightAverage(cfg.adversarial.ema, g.net, resumeAt, resume.dir);
    const gan = makeGan(cfg, g.net, d.net, streams, { average });
    if (d.adam) gan.optD.restore(d.adam);
    if (g.adam) gan.optG.restore(g.adam);
    const total = cfg.adversarial.iterations;
    try {
      const range = {
        train: fromUnitScale(train.data, cfg.model.pixelScale),
        dim,
        from: resumeAt ?? 0,
        to: total,
        history,
      };
      const watch = live ? liveView(live, cfg.seed, gan, total) : undefined;
      watch?.resumed(history);
      await loop(gan, cfg.adversarial, range, { resume, progress, watch });
      await gan.path.sync();
      await saveNet(artifact(outDir, "police"), gan.d, gan.optD.state());
      if (gan.average) {
        await saveNet(artifact(outDir, "counterfeiterTrained"), gan.g, gan.optG.state());
        await withSampler(gan, (s) => saveNet(artifact(outDir, "counterfeiter"), s));
      } else {
        await saveNet(artifact(outDir, "counterfeiter"), gan.g, gan.optG.state());
      }
      await Deno.writeTextFile(
        artifact(outDir, "history"),
        JSON.stringify(history.map(({ seconds: _s, ...numbers }) => numbers), null, 1) + "\n",
      );
      await Deno.writeTextFile(
        artifact(outDir, "timing"),
        JSON.stringify({ seconds: history.map((r) => r.seconds) }) + "\n",
      );
      await Deno.writeTextFile(artifact(outDir, "rng"), JSON.stringify(streamsState(gan.streams)));
      // linked, not moved: until the entry is committed the work folder keeps every snapshot,
      // so a kill here can not leave a resumed run with the early checkpoints gone
      await resume.linkSnapshots(artifact(outDir, "checkpoints"));
    } finally {
      gan.path.dispose();
      disposeNet(gan.g);
      disposeNet(gan.d);
    }
    const last = history.at(-1);
    return {
      iterations: total,
      resumedFrom: resumeAt,
      final: last ? { ...last, seconds: undefined } : null,
      meanSecondsPerIteration: history.length
        ? history.reduce((s, r) => s + r.seconds, 0) / history.length
        : 0,
    };
  },
};

/**
 * What the loop shows while it runs (the run folder's `live/`): a row per iteration, and at
 * each checkpoint a grid of the evaluation's fixed grid noise (its own stream: the loop's
 * draws are untouched, so watching changes no number).
 */
function liveView(live: LiveLog, seed: number, gan: Gan, total: number) {
  // the net's own noise width (the config's is the warm-up stages' to read)
  const nd = gan.noiseDim;
  const noise = new Rng(seed, STREAM.evaluateGridNoise).normals(GRID_IMAGES * nd);
  const row = (r: HistoryRow) => live.row({ kind: "iteration", of: total, ...r });
  return {
    resumed: (history: HistoryRow[]) => history.forEach(row),
    iteration: row,
    async checkpoint(iteration: number, sampler: Net) {
      const images = clip01(toUnitScale(inferImages(sampler, noise), gan.g.pixelScale)).clipped;
      const side = Math.round(Math.sqrt(images.length / GRID_IMAGES));
      const name = `${iterName(iteration)}.png`;
      if (await live.file(name, gridPng(images, side, GRID_IMAGES))) {
        live.row({ kind: "grid", iteration, file: `adversarial/${name}` });
      }
    },
  };
}

/** The loop with a progress bar and a resumable checkpoint every `checkpointEvery`. */
async function loop(
  gan: Gan,
  a: Config["adversarial"],
  range: Omit<LoopRange, "onIteration">,
  { resume, progress, watch }: {
    resume: ResumableState;
    progress: Progress;
    watch?: ReturnType<typeof liveView>;
  },
) {
  const marks = new Set(checkpointIterations(range.to, a.checkpointEvery));
  progress.start("adversarial", range.to, range.from);
  await adversarialIterations(gan, a, {
    ...range,
    onIteration: async (row) => {
      progress.update(row.iteration, {
        "D(real)": row.dRealAfterPolice,
        "D(fake)": row.dFakeAfterCounterfeiter,
        "loss D": row.policeLoss,
        "loss G": row.counterfeiterLoss,
      });
      watch?.iteration(row);
      if (marks.has(row.iteration)) {
        await gan.path.sync();
        await withSampler(gan, async (sampler) => {
          await saveCheckpoint(resume, gan, sampler, row.iteration, range.history);
          await watch?.checkpoint(row.iteration, sampler);
        });
      }
    },
  });
  progress.done();
}

/** The counterfeiter's weight average, resumed from the state or started from its weights. */
async function weightAverage(
  decay: number | null,
  g: Net,
  resumeAt: number | null,
  stateDir: string,
): Promise<WeightAverage | null> {
  if (decay === null) return null;
  if (resumeAt === null) return new WeightAverage(decay, g);
  const { net } = await loadNet(join(stateDir, EMA_STATE));
  try {
    return new WeightAverage(decay, g, variablesOf(net).map((v) => v.dataSync() as Float32Array));
  } finally {
    disposeNet(net);
  }
}
