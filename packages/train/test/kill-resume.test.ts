import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { decodeF32Safetensors } from "../src/tensorfile.js";

// One process (node with tsx's ESM hooks), not the tsx CLI: the CLI runs the script in a child process that a
// SIGKILL of the CLI would leave running.
const NODE_ARGS = ["--import", "tsx"];
const SCRIPT = fileURLToPath(new URL("./fixtures/cpt-run.ts", import.meta.url));
let root: string;
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

/** Run the training script to completion; returns its stdout. */
function runToEnd(dir: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...NODE_ARGS, SCRIPT, dir], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.stderr.on("data", (d) => {
      err += d;
    });
    child.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}: ${err}`))));
  });
}

/**
 * Start the script, let it freeze itself once step `step` is done (checkpoints of the steps before it are on
 * disk, this step's update only in memory), and SIGKILL it there. The kill point is a fact of the run, not of
 * how fast the machine is: the old version polled for the first checkpoint every 5 ms and could, on a loaded
 * machine, see the run finish first.
 */
function runAndKill(dir: string, step: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...NODE_ARGS, SCRIPT, dir], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, HIPPO_TEST_FREEZE_AT: String(step) },
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => {
      out += d;
      if (out.includes(`FROZEN ${step}\n`)) child.kill("SIGKILL");
    });
    child.stderr.on("data", (d) => {
      err += d;
    });
    child.on("exit", (code, signal) => {
      if (signal === "SIGKILL" && out.includes(`FROZEN ${step}`)) resolve();
      else reject(new Error(`expected a kill at step ${step}, got exit ${code}: ${out}${err}`));
    });
  });
}

async function adapterWeights(dir: string) {
  return decodeF32Safetensors(await readFile(join(dir, "adapter_model.safetensors")), dir);
}

describe("kill -9 mid-run, then resume", () => {
  it("reaches the same final adapter weights as an uninterrupted run", async () => {
    root = await mkdtemp(join(tmpdir(), "hippo-kill-"));
    const straight = join(root, "straight");
    const killed = join(root, "killed");
    const straightLog = await runToEnd(straight);
    expect(straightLog).toMatch(/START fresh\nDONE 20/);

    // Killed with step 7 done: checkpoints 2, 4 and 6 are on disk, step 7's update is lost with the process.
    await runAndKill(killed, 7);
    expect(existsSync(join(killed, "trainer_state.json"))).toBe(false); // it did not finish
    const pointer = (await readFile(join(killed, "latest"), "utf8")).trim();
    expect(Number(pointer.replace("checkpoint-", ""))).toBeLessThan(20);
    expect(pointer).toBe("checkpoint-6");

    const log = await runToEnd(killed);
    expect(log).toMatch(/START .*checkpoint-\d+\nDONE 20/);
    expect(log).toContain("checkpoint-6");
    // The run's train_loss covers all 20 steps, those before the kill too: the uninterrupted run's, exactly.
    const trainLoss = (text: string) => /train_loss (\S+)/.exec(text)?.[1];
    expect(trainLoss(log)).toBeDefined();
    expect(trainLoss(log)).toBe(trainLoss(straightLog));

    const a = await adapterWeights(straight);
    const b = await adapterWeights(killed);
    expect([...b.keys()]).toEqual([...a.keys()]);
    let maxDiff = 0;
    let maxAbs = 0;
    for (const [k, t] of a) {
      const u = b.get(k)?.data as Float32Array;
      for (let i = 0; i < t.data.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs((t.data[i] as number) - (u[i] as number)));
        maxAbs = Math.max(maxAbs, Math.abs(t.data[i] as number));
      }
    }
    expect(maxAbs).toBeGreaterThan(1e-4); // B moved away from zero: the comparison is not vacuous
    // Same kernels, same order, same data and dropout masks: equal to float32 rounding (1e-6 absolute) ...
    expect(maxDiff).toBeLessThan(1e-6);
    // ... and in fact bit for bit: the checkpoint restores every bit (its PEFT-layout transposes included).
    for (const [k, t] of a) {
      const u = b.get(k)?.data as Float32Array;
      expect(Buffer.from(u.buffer, u.byteOffset, u.byteLength).equals(Buffer.from(t.data.buffer))).toBe(true);
    }
    // The loss curves agree step by step.
    const curve = async (dir: string) =>
      (await readFile(join(dir, "metrics.jsonl"), "utf8"))
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { step: number; loss: number });
    const ca = await curve(straight);
    const cb = await curve(killed);
    expect(cb.map((e) => e.step)).toEqual(ca.map((e) => e.step));
    cb.forEach((e, i) => {
      expect(Math.abs(e.loss - (ca[i]?.loss as number))).toBeLessThan(1e-5);
    });
  });
});
