/**
 * Checkpoints as files other tools read, and resume when they are damaged: trainer_state.json holds exactly
 * transformers' TrainerState fields (our own facts live in hippo_state.json), a corrupt newest checkpoint is
 * skipped with a line saying so, a run whose every checkpoint is corrupt stops (or restarts when asked), and the
 * run's train_loss after a resume is that of an uninterrupted run, bit for bit. On the tiny MLP LM (cpu backend).
 */
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { HippoError } from "@hippocrates/core";
import { describe, expect, it } from "vitest";
import { findLatestCheckpoint, HIPPO_STATE, TRAINER_STATE } from "../src/checkpoint.js";
import { decodeF32Safetensors, encodeF32Safetensors } from "../src/tensorfile.js";
import { type MlpRunOptions, tempDirs, trainMlp, trainMlpUntil } from "./mlp-loop.js";

/**
 * The fields of transformers' TrainerState dataclass, in its order, as read from huggingface/transformers
 * src/transformers/trainer_callback.py on main (the v4.5x/v5 line; `best_global_step` is the newest field, and
 * 4.4x, e.g. commit 55093b758b33, has the others). `TrainerState.load_from_json` is `cls(**json.loads(text))`,
 * so the JSON's top-level keys must be exactly these.
 */
const TRAINER_STATE_FIELDS = [
  "epoch",
  "global_step",
  "max_steps",
  "logging_steps",
  "eval_steps",
  "save_steps",
  "train_batch_size",
  "num_train_epochs",
  "num_input_tokens_seen",
  "total_flos",
  "log_history",
  "best_metric",
  "best_global_step",
  "best_model_checkpoint",
  "is_local_process_zero",
  "is_world_process_zero",
  "is_hyper_param_search",
  "trial_name",
  "trial_params",
  "stateful_callbacks",
];

const tempDir = tempDirs("hippo-ckpt-");

const facts = { stage: "cpt", base_model: { kind: "hf-model", path: "base" } };

/** The loop on a fresh MLP (same init every time) over 14 items, 8 steps; returns the result and weights. */
const run = (outputDir: string, extra: MlpRunOptions = {}) => trainMlp(outputDir, { facts, ...extra });

/** Run until step `n` (a checkpoint is saved on abort) and stop. */
const runUntil = (outputDir: string, n: number) => trainMlpUntil(outputDir, n, { facts });

async function truncate(file: string): Promise<void> {
  const bytes = await readFile(file);
  await writeFile(file, bytes.subarray(0, bytes.length - 10));
}

const readJson = async (p: string) => JSON.parse(await readFile(p, "utf8")) as Record<string, unknown>;
const bits = (ws: Float32Array[]) =>
  ws.map((w) => Array.from(new Uint32Array(w.buffer, w.byteOffset, w.length)));

describe("checkpoint files", () => {
  it("trainer_state.json holds exactly transformers' TrainerState fields, in checkpoints and the output", async () => {
    const dir = await tempDir();
    const { result } = await run(dir);
    expect(result.globalStep).toBe(8);
    for (const file of [join(dir, TRAINER_STATE), join(dir, "checkpoint-4", TRAINER_STATE)]) {
      const state = await readJson(file);
      expect(Object.keys(state).sort()).toEqual([...TRAINER_STATE_FIELDS].sort());
      expect(state.is_world_process_zero).toBe(true);
      expect(state.stateful_callbacks).toEqual({});
    }
    const final = await readJson(join(dir, TRAINER_STATE));
    expect(final).toMatchObject({ global_step: 8, max_steps: 8, num_train_epochs: 2, train_batch_size: 2 });
    expect(final.epoch).toBe(2);
    expect((final.log_history as unknown[]).length).toBe(8);
    expect((await readJson(join(dir, "checkpoint-4", TRAINER_STATE))).global_step).toBe(4);
    // Our facts moved to hippo_state.json, and resume reads them from there.
    const facts = await readJson(join(dir, HIPPO_STATE));
    expect(facts).toMatchObject({
      stage: "cpt",
      gradient_accumulation_steps: 2,
      learning_rate: 0.05,
      seed: 7,
    });
    expect(facts.train_loss).toBe(result.trainLoss);
    const ckpt = await readJson(join(dir, "checkpoint-4", HIPPO_STATE));
    expect(ckpt.stage).toBe("cpt");
    expect(Object.keys(ckpt.files as object).sort()).toEqual([
      "optimizer.safetensors",
      "trainable.safetensors",
      "trainer_state.json",
    ]);
    expect((ckpt.resume as { globalStep: number }).globalStep).toBe(4);
  });
});

describe("tensor files", () => {
  it("keep the data 8-byte aligned when a name is not ASCII (the header is padded in bytes)", () => {
    for (const name of ["w", "poids.é", "重み.weight"]) {
      const bytes = encodeF32Safetensors([{ name, shape: [2], data: new Float32Array([1.5, -2]) }]);
      const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      expect(headerLength % 8).toBe(0);
      expect([...(decodeF32Safetensors(bytes, "t").get(name)?.data ?? [])]).toEqual([1.5, -2]);
    }
  });
});

describe("resume from damaged checkpoints", () => {
  it("a truncated newest checkpoint: the fallback to the previous one is announced in one line naming both", async () => {
    const dir = await tempDir();
    await runUntil(dir, 6); // checkpoints 2, 4, 6
    await truncate(join(dir, "checkpoint-6", "optimizer.safetensors"));
    const lines: string[] = [];
    const { result } = await run(dir, { resume: true, log: (l) => lines.push(l) });
    expect(result.globalStep).toBe(8);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(join(dir, "checkpoint-6"));
    expect(lines[0]).toContain(join(dir, "checkpoint-4"));
    expect(lines[0]).toMatch(/does not match its recorded size\/hash/);
    // It really resumed at step 4: the metrics log has each step once.
    const steps = (await readFile(join(dir, "metrics.jsonl"), "utf8"))
      .trim()
      .split("\n")
      .map((l) => (JSON.parse(l) as { step: number }).step);
    expect(steps).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("every checkpoint corrupt: the run stops with an error naming the folder, unless asked to restart", async () => {
    const dir = await tempDir();
    await runUntil(dir, 4); // checkpoints 2, 4
    for (const c of ["checkpoint-2", "checkpoint-4"]) await truncate(join(dir, c, "trainable.safetensors"));
    expect(await findLatestCheckpoint(dir)).toBeUndefined();
    const err = await run(dir, { resume: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HippoError);
    expect((err as HippoError).message).toContain(dir);
    expect((err as HippoError).message).toMatch(/every checkpoint .* is corrupt/);
    expect((err as HippoError).message).toContain('resume: "restart"');
    // Nothing was touched by the refusal.
    expect((await readdir(dir)).filter((n) => n.startsWith("checkpoint-")).sort()).toEqual([
      "checkpoint-2",
      "checkpoint-4",
    ]);
    // A fresh (non-resume) run over them is refused too: they are an earlier run's.
    await expect(run(dir)).rejects.toThrow(/checkpoints of an earlier run/);

    // resume: "restart" drops them (saying so) and trains from step 0: the same result as a run in a new folder.
    const lines: string[] = [];
    const restarted = await run(dir, { resume: "restart", log: (l) => lines.push(l) });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/restart: removed 2 checkpoint\(s\)/);
    const fresh = await run(await tempDir());
    expect(restarted.result.globalStep).toBe(8);
    expect(bits(restarted.weights)).toEqual(bits(fresh.weights));
    expect(restarted.result.trainLoss).toBe(fresh.result.trainLoss);
  });

  it("after a resume, train_loss covers the whole run: equal to an uninterrupted run's, bit for bit", async () => {
    const straight = await run(await tempDir());
    const dir = await tempDir();
    await runUntil(dir, 3); // checkpoint at 2 and 3 (abort)
    const resumed = await run(dir, { resume: true });
    expect(resumed.result.globalStep).toBe(8);
    // The same weights (bit for bit: the same ops on the same backend from the same restored state) ...
    expect(bits(resumed.weights)).toEqual(bits(straight.weights));
    // ... so the same per-step losses, summed in the same order.
    const losses = straight.result.logHistory.map((e) => e.loss as number);
    expect(straight.result.trainLoss).toBe(losses.reduce((a, b) => a + b, 0) / 8);
    expect(resumed.result.trainLoss).toBe(straight.result.trainLoss);
    expect((await readJson(join(dir, HIPPO_STATE))).train_loss).toBe(straight.result.trainLoss);
  });
});
