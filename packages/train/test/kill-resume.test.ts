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

/** Start the script and SIGKILL it as soon as a checkpoint exists. */
function runAndKill(dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...NODE_ARGS, SCRIPT, dir], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    const timer = setInterval(() => {
      if (existsSync(join(dir, "latest"))) {
        clearInterval(timer);
        child.kill("SIGKILL");
      }
    }, 5);
    child.on("exit", (code, signal) => {
      clearInterval(timer);
      if (signal === "SIGKILL") resolve();
      else reject(new Error(`expected a kill, got exit ${code}`));
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
    expect(await runToEnd(straight)).toMatch(/START fresh\nDONE 20/);

    await runAndKill(killed);
    expect(existsSync(join(killed, "trainer_state.json"))).toBe(false); // it did not finish
    const pointer = (await readFile(join(killed, "latest"), "utf8")).trim();
    expect(Number(pointer.replace("checkpoint-", ""))).toBeLessThan(20);

    const log = await runToEnd(killed);
    expect(log).toMatch(/START .*checkpoint-\d+\nDONE 20/);

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
    // Same kernels, same order, same data and dropout masks: equal to float32 rounding (1e-6 absolute).
    expect(maxDiff).toBeLessThan(1e-6);
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
