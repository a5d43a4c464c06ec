import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRng, type ProgressReporter, type TokenizedExample } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import { afterAll, describe, expect, it } from "vitest";
import { findLatestCheckpoint, verifyCheckpoint } from "../src/checkpoint.js";
import { type LoopConfig, runTrainingLoop } from "../src/loop.js";
import { lmTask } from "../src/tasks.js";
import { createMlpLm, maxAbsDiff, weightsOf } from "./helpers.js";

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "hippo-train-"));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function data(n: number, seed: number): TokenizedExample[] {
  const rng = createRng(seed);
  return Array.from({ length: n }, () => {
    const len = 4 + rng.int(6);
    const ids = [1, ...Array.from({ length: len }, () => 3 + rng.int(13)), 2];
    return { inputIds: ids, labels: ids };
  });
}

const config: LoopConfig = {
  microBatchSize: 2,
  gradientAccumulation: 2,
  epochs: 2,
  lr: 0.05,
  schedule: "cosine",
  warmupSteps: 1,
  seed: 7,
  saveSteps: 2,
  optimizer: { weightDecay: 0.01 },
};

function abortAfter(steps: number, controller: AbortController): ProgressReporter {
  return {
    start: ({ initial = 0 }) => {
      let done = initial;
      return {
        tick() {
          done += 1;
          if (done >= steps) controller.abort();
        },
        done() {},
      };
    },
  };
}

describe("training loop", () => {
  const train = data(14, 1); // 14 items, 4 per step -> 4 steps per epoch, 8 in all

  it("an interrupted and resumed run reaches the same weights and loss curve as an uninterrupted one", async () => {
    const straightDir = await tempDir();
    const m1 = createMlpLm(16, 8, 11);
    const straight = await runTrainingLoop({
      task: lmTask(m1, { padId: 0 }),
      train,
      variables: m1.variables,
      names: m1.names,
      config,
      outputDir: straightDir,
    });
    expect(straight.globalStep).toBe(8);

    const dir = await tempDir();
    const m2 = createMlpLm(16, 8, 11);
    const controller = new AbortController();
    await expect(
      runTrainingLoop({
        task: lmTask(m2, { padId: 0 }),
        train,
        variables: m2.variables,
        names: m2.names,
        config,
        outputDir: dir,
        progress: abortAfter(5, controller),
        signal: controller.signal,
      }),
    ).rejects.toMatchObject({ code: "ABORTED" });
    expect(await findLatestCheckpoint(dir)).toBe(join(dir, "checkpoint-5"));
    m2.dispose();

    const m3 = createMlpLm(16, 8, 99); // different init: everything must come from the checkpoint
    const resumed = await runTrainingLoop({
      task: lmTask(m3, { padId: 0 }),
      train,
      variables: m3.variables,
      names: m3.names,
      config,
      outputDir: dir,
      resume: true,
    });
    expect(resumed.globalStep).toBe(8);
    // Same ops in the same order on the same backend: identical up to float32 rounding (1e-6).
    expect(maxAbsDiff(await weightsOf(m1.variables), await weightsOf(m3.variables))).toBeLessThan(1e-6);
    const losses = (h: typeof straight.logHistory) =>
      h.filter((e) => e.loss !== undefined).map((e) => e.loss);
    expect(losses(resumed.logHistory)).toHaveLength(8);
    losses(resumed.logHistory).forEach((l, i) => {
      expect(l).toBeCloseTo(losses(straight.logHistory)[i] as number, 6);
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
    m1.dispose();
    m3.dispose();
  });

  it("never loads a half-written or corrupted checkpoint", async () => {
    const dir = await tempDir();
    const m = createMlpLm(16, 8, 5);
    await runTrainingLoop({
      task: lmTask(m, { padId: 0 }),
      train,
      variables: m.variables,
      names: m.names,
      config: { ...config, epochs: 1 },
      outputDir: dir,
    });
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
    m.dispose();
  });

  it("refuses to resume with another batch layout, and to start afresh over old checkpoints", async () => {
    const dir = await tempDir();
    const m = createMlpLm(16, 8, 5);
    await runTrainingLoop({
      task: lmTask(m, { padId: 0 }),
      train,
      variables: m.variables,
      names: m.names,
      config: { ...config, epochs: 1 },
      outputDir: dir,
    });
    await expect(
      runTrainingLoop({
        task: lmTask(m, { padId: 0 }),
        train,
        variables: m.variables,
        names: m.names,
        config: { ...config, epochs: 1, microBatchSize: 4 },
        outputDir: dir,
        resume: true,
      }),
    ).rejects.toThrow(/microBatchSize/);
    // A fresh (non-resume) run into a folder with checkpoints is refused too.
    await expect(
      runTrainingLoop({
        task: lmTask(m, { padId: 0 }),
        train,
        variables: m.variables,
        names: m.names,
        config: { ...config, epochs: 1 },
        outputDir: dir,
      }),
    ).rejects.toThrow(/resume: true/);
    m.dispose();
  });

  it("keeps tf.memory().numTensors flat across 50 training steps", async () => {
    const dir = await tempDir();
    const m = createMlpLm(16, 8, 5);
    const counts: number[] = [];
    const progress: ProgressReporter = {
      start: () => ({ tick: () => counts.push(tf.memory().numTensors), done() {} }),
    };
    const r = await runTrainingLoop({
      task: lmTask(m, { padId: 0 }),
      train: data(100, 2),
      variables: m.variables,
      names: m.names,
      config: { ...config, epochs: 2, maxSteps: 50, saveSteps: 0 },
      outputDir: dir,
      progress,
    });
    expect(r.globalStep).toBe(50);
    expect(counts).toHaveLength(50);
    expect(new Set(counts.slice(1)).size).toBe(1);
    m.dispose();
  });
});
