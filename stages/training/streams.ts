/** The seeded random streams of the training stages: one id per use, so none shifts another. */
import { Rng } from "../../pipeline/rng.ts";

/** The random streams of a training run, each from the seed, so one use never shifts another. */
export interface Streams {
  shuffle: Rng;
  dropout: Rng;
  data: Rng;
  /** Label flips and instance noise (drawn from only when those knobs are on). */
  augment: Rng;
}

/** Stream ids: fixed forever, since changing one changes every cached number. */
export const STREAM = {
  initCounterfeiter: 1,
  initPolice: 2,
  warmupNoise: 3,
  warmupShuffle: 4,
  warmupDropout: 5,
  warmupCounterfeiterShuffle: 6,
  warmupAugment: 7,
  advShuffle: 10,
  advDropout: 11,
  advData: 12,
  advAugment: 13,
  evaluatorInit: 20,
  evaluatorShuffle: 21,
  evaluateTrainRows: 30,
  evaluateGridNoise: 31,
  evaluateNoise: 32,
  preprocessSubset: 101,
  sample: 110,
} as const;

/** The training streams of a phase. */
export function streamsFor(cfg: { seed: number }, phase: "warmup" | "adversarial"): Streams {
  const s = cfg.seed;
  return phase === "warmup"
    ? {
      shuffle: new Rng(s, STREAM.warmupShuffle),
      dropout: new Rng(s, STREAM.warmupDropout),
      data: new Rng(s, STREAM.warmupNoise),
      augment: new Rng(s, STREAM.warmupAugment),
    }
    : {
      shuffle: new Rng(s, STREAM.advShuffle),
      dropout: new Rng(s, STREAM.advDropout),
      data: new Rng(s, STREAM.advData),
      augment: new Rng(s, STREAM.advAugment),
    };
}

/** Serialisable states of streams, for checkpoints. */
export function streamsState(s: Streams): Record<keyof Streams, (number | null)[]> {
  return {
    shuffle: s.shuffle.state(),
    dropout: s.dropout.state(),
    data: s.data.state(),
    augment: s.augment.state(),
  };
}

/** Streams restored from {@link streamsState}. */
export function streamsFromState(st: Record<keyof Streams, (number | null)[]>): Streams {
  return {
    shuffle: Rng.fromState(st.shuffle),
    dropout: Rng.fromState(st.dropout),
    data: Rng.fromState(st.data),
    augment: Rng.fromState(st.augment),
  };
}
