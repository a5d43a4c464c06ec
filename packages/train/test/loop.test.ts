import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { ProgressReporter } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";
import { findLatestCheckpoint, verifyCheckpoint } from "../src/checkpoint.js";
import { maxAbsDiff } from "./helpers.js";
import { MLP_LOOP_CONFIG as config, randomLmData, tempDirs, trainMlp, trainMlpUntil } from "./mlp-loop.js";

const tempDir = tempDirs("hippo-train-");

describe("training loop", () => {
  // trainMlp: 14 items, 4 per step -> 4 steps per epoch, 8 in all.

  it("an interrupted and resumed run reaches the same weights and loss curve as an uninterrupted one", async () => {
    const straight = await trainMlp(await tempDir(), { seed: 11 });
    expect(straight.result.globalStep).toBe(8);

    const dir = await tempDir();
    await trainMlpUntil(dir, 5, { seed: 11 });
    expect(await findLatestCheckpoint(dir)).toBe(join(dir, "checkpoint-5"));

    // A different init: everything must come from the checkpoint.
    const resumed = await trainMlp(dir, { seed: 99, resume: true });
    expect(resumed.result.globalStep).toBe(8);
    // Same ops in the same order on the same backend: identical up to float32 rounding (1e-6).
    expect(maxAbsDiff(straight.weights, resumed.weights)).toBeLessThan(1e-6);
    const losses = (h: typeof straight.result.logHistory) =>
      h.filter((e) => e.loss !== undefined).map((e) => e.loss);
    expect(losses(resumed.result.logHistory)).toHaveLength(8);
    losses(resumed.result.logHistory).forEach((l, i) => {
      expect(l).toBeCloseTo(losses(straight.result.logHistory)[i] as number, 6);
    });
    // metrics.jsonl: one line per step, no duplicates after the resume.
    const lines = (await readFile(join(dir, "metrics.jsonl"), "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { step: number });
    expect(lines.map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const state = JSON.parse(await readFile(join(dir, "trainer_state.json"), "utf8")) as Record<
      string,
      unknown
    >;
    expect(state.global_step).toBe(8);
    expect((state.log_history as unknown[]).length).toBe(8);
  });

  it("never loads a half-written or corrupted checkpoint", async () => {
    const dir = await tempDir();
    await trainMlp(dir, { seed: 5, config: { ...config, epochs: 1 } });
    expect(await findLatestCheckpoint(dir)).toBe(join(dir, "checkpoint-4"));
    // A crash while writing checkpoint-6 leaves a temporary folder: ignored.
    await mkdir(join(dir, ".checkpoint-6.tmp-123-abcd"));
    await writeFile(join(dir, ".checkpoint-6.tmp-123-abcd", "trainer_state.json"), "{");
    // A checkpoint-8 folder whose weights were cut short, with `latest` pointing at it: rejected.
    const good = join(dir, "checkpoint-4");
    const bad = join(dir, "checkpoint-8");
    await mkdir(bad);
    for (const f of await readdir(good)) await writeFile(join(bad, f), await readFile(join(good, f)));
    const w = await readFile(join(bad, "trainable.safetensors"));
    await writeFile(join(bad, "trainable.safetensors"), w.subarray(0, w.length - 10));
    await writeFile(join(dir, "latest"), "checkpoint-8\n");
    await expect(verifyCheckpoint(bad)).rejects.toThrow(/does not match its recorded size\/hash/);
    expect(await findLatestCheckpoint(dir)).toBe(good);
  });

  it("refuses to resume with another batch layout, and to start afresh over old checkpoints", async () => {
    const dir = await tempDir();
    const oneEpoch = { ...config, epochs: 1 };
    await trainMlp(dir, { seed: 5, config: oneEpoch });
    await expect(
      trainMlp(dir, { seed: 5, config: { ...oneEpoch, microBatchSize: 4 }, resume: true }),
    ).rejects.toThrow(/microBatchSize/);
    // A fresh (non-resume) run into a folder with checkpoints is refused too.
    await expect(trainMlp(dir, { seed: 5, config: oneEpoch })).rejects.toThrow(/resume: true/);
  });

  it("keeps tf.memory().numTensors flat across 50 training steps", async () => {
    const counts: number[] = [];
    const progress: ProgressReporter = {
      start: () => ({ tick: () => counts.push(tf.memory().numTensors), done() {} }),
    };
    const { result } = await trainMlp(await tempDir(), {
      seed: 5,
      train: randomLmData(100, 2),
      config: { ...config, epochs: 2, maxSteps: 50, saveSteps: 0 },
      progress,
    });
    expect(result.globalStep).toBe(50);
    expect(counts).toHaveLength(50);
    expect(new Set(counts.slice(1)).size).toBe(1);
  });
});
