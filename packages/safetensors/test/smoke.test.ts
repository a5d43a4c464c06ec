import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { openCheckpoint, openSafetensors, writeSafetensors, writeShardedSafetensors } from "../src/index.js";

const DATA = fileURLToPath(new URL("../../../../shared/data/", import.meta.url));
const tmp = await mkdtemp(join(tmpdir(), "st-smoke-"));
afterAll(() => rm(tmp, { recursive: true, force: true }));

describe("smoke", () => {
  it("reads the tiny llama", async () => {
    const r = await openSafetensors(join(DATA, "models/tiny-llama-hf/model.safetensors"));
    expect(r.tensors.size).toBe(21);
    const w = await r.readFloat32("model.norm.weight");
    expect(w.length).toBe(64);
    await r.close();
  });
  it("round trips sharded", async () => {
    const t = {
      a: { dtype: "F32" as const, shape: [4], data: new Float32Array([1, 2, 3, 4]) },
      b: { dtype: "BF16" as const, shape: [2], data: new Float32Array([1.5, -2]) },
    };
    await writeSafetensors(join(tmp, "x.safetensors"), t);
    const res = await writeShardedSafetensors(join(tmp, "sh"), t, { maxShardBytes: 8 });
    expect(res.files.length).toBe(2);
    const c = await openCheckpoint(join(tmp, "sh"));
    expect([...(await c.readFloat32("b"))]).toEqual([1.5, -2]);
    await c.close();
  });
});
