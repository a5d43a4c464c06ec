/**
 * Learning-rate schedules as plain functions of the optimizer step, with HF transformers' semantics
 * (`get_cosine_schedule_with_warmup`, `get_cosine_with_min_lr_schedule_with_warmup`,
 * `get_constant_schedule_with_warmup`). The optimizer step `s` counts updates already done, so the first update
 * uses `lrAt(0)` - which is 0 when there is warmup, exactly as HF (its scheduler steps after the optimizer).
 */
import { HippoError } from "@hippocrates/core";

export type ScheduleKind = "cosine" | "constant" | "linear";

export interface ScheduleConfig {
  kind: ScheduleKind;
  /** Peak learning rate. */
  lr: number;
  /** Optimizer steps of linear warmup from 0 to `lr`. */
  warmupSteps: number;
  /** Total optimizer steps of the run (cosine and linear decay to the end). */
  totalSteps: number;
  /** Cosine only: the floor as a fraction of `lr` (HF `min_lr_rate`); default 0. */
  minLrRatio?: number;
}

/** The multiplier HF's LambdaLR applies at optimizer step `step` (0-based). */
export function scheduleFactor(config: ScheduleConfig, step: number): number {
  const { kind, warmupSteps, totalSteps } = config;
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  if (kind === "constant") return 1;
  const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
  if (kind === "linear") return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
  // num_cycles = 0.5: half a cosine from 1 down to 0 over the decay phase.
  const cosine = Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 2 * 0.5 * progress)));
  const minRatio = config.minLrRatio ?? 0;
  return cosine * (1 - minRatio) + minRatio;
}

export function learningRateAt(config: ScheduleConfig, step: number): number {
  return config.lr * scheduleFactor(config, step);
}

export function validateSchedule(config: ScheduleConfig, key = "schedule"): void {
  if (!["cosine", "constant", "linear"].includes(config.kind))
    throw new HippoError("INVALID_CONFIG", "unknown schedule", {
      key: `${key}.kind`,
      expected: "cosine | constant | linear",
      got: String(config.kind),
    });
  if (!(config.lr > 0) || !Number.isFinite(config.lr))
    throw new HippoError("INVALID_CONFIG", "learning rate must be positive", {
      key: `${key}.lr`,
      got: String(config.lr),
    });
  if (!Number.isInteger(config.warmupSteps) || config.warmupSteps < 0)
    throw new HippoError("INVALID_CONFIG", "warmup steps must be a non-negative integer", {
      key: `${key}.warmupSteps`,
      got: String(config.warmupSteps),
    });
  const min = config.minLrRatio ?? 0;
  if (!(min >= 0 && min <= 1))
    throw new HippoError("INVALID_CONFIG", "minLrRatio must be in [0, 1]", {
      key: `${key}.minLrRatio`,
      got: String(min),
    });
}
