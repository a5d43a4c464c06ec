/**
 * The real bf16 checkpoint and the F32/I32 reference files beside it, checked against an independent
 * Python/numpy reading (fixtures/make_fixtures.py -> fixtures/tiny-llama.json).
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openCheckpoint, openSafetensors, type TensorToWrite, writeSafetensors } from "../src/index.js";
import { TINY, tempDir } from "./helpers.js";

const { dir, cleanup } = await tempDir("tiny");
afterAll(cleanup);

interface RefTensor {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
  byteOffset: number;
  first: number[];
  sum: number;
}
interface RefFile {
  headerLength: number;
  order: string[];
  tensors: Record<string, RefTensor>;
}
const refs = JSON.parse(
  await readFile(new URL("./fixtures/tiny-llama.json", import.meta.url), "utf8"),
) as Record<string, RefFile>;

function sum(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s;
}

describe.each(Object.keys(refs))("tiny-llama-hf/%s", (file) => {
  const ref = refs[file]!;
  it("header: names in header order, dtypes, shapes, offsets", async () => {
    const r = await openSafetensors(join(TINY, file));
    try {
      expect([...r.tensors.keys()]).toEqual(ref.order);
      for (const [name, t] of Object.entries(ref.tensors)) {
        const info = r.tensors.get(name)!;
        expect(info.dtype).toBe(t.dtype);
        expect(info.shape).toEqual(t.shape);
        expect(info.byteOffset).toBe(t.byteOffset);
        expect(info.byteLength).toBe(t.data_offsets[1] - t.data_offsets[0]);
      }
    } finally {
      await r.close();
    }
  });

  it("re-writing every tensor reproduces the reference (Rust safetensors 0.8) file byte for byte", async () => {
    const r = await openSafetensors(join(TINY, file));
    const entries: [string, TensorToWrite][] = [];
    for (const [name, info] of r.tensors) {
      entries.push([name, { dtype: info.dtype, shape: info.shape, data: () => r.readBytes(name) }]);
    }
    const out = join(dir, file.replace("/", "_"));
    try {
      await writeSafetensors(out, entries, Object.keys(r.metadata).length > 0 ? r.metadata : undefined);
    } finally {
      await r.close();
    }
    expect(Buffer.compare(await readFile(out), await readFile(join(TINY, file)))).toBe(0);
  });

  it("values: first elements exactly, sums to float64 rounding", async () => {
    const r = await openSafetensors(join(TINY, file));
    try {
      for (const [name, t] of Object.entries(ref.tensors)) {
        const v = await r.readFloat32(name);
        expect(v.length).toBe(t.shape.reduce((a, b) => a * b, 1));
        expect([...v.subarray(0, 8)]).toEqual(t.first);
        // numpy sums pairwise, we sum left to right: both in float64 of the same float32 values, so they
        // agree to a few ulps of the magnitude (1e-9 relative to the sum of |x| is far above that).
        const abs = sum(v.map(Math.abs));
        expect(Math.abs(sum(v) - t.sum)).toBeLessThanOrEqual(1e-9 * abs + 1e-30);
      }
    } finally {
      await r.close();
    }
  });
});

describe("tiny-llama-hf model.safetensors (bf16)", () => {
  it("bf16 -> f32 equals the raw bits shifted left by 16", async () => {
    const r = await openSafetensors(join(TINY, "model.safetensors"));
    const bytes = await r.readBytes("model.layers.0.self_attn.q_proj.weight");
    const f = await r.readFloat32("model.layers.0.self_attn.q_proj.weight");
    await r.close();
    const bits = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
    const fbits = new Uint32Array(f.buffer, f.byteOffset, f.length);
    expect(fbits.length).toBe(64 * 64);
    expect([...fbits]).toEqual([...bits].map((b) => (b << 16) >>> 0));
  });

  it("input_ids (I32) in activations.safetensors equal meta.json", async () => {
    const meta = JSON.parse(await readFile(join(TINY, "expected/meta.json"), "utf8")) as {
      input_ids: number[];
    };
    const r = await openSafetensors(join(TINY, "expected/activations.safetensors"));
    const ids = await r.readTyped("input_ids");
    await r.close();
    expect(ids).toBeInstanceOf(Int32Array);
    expect([...(ids as Int32Array)]).toEqual(meta.input_ids);
  });

  it("openCheckpoint finds model.safetensors in the folder", async () => {
    const c = await openCheckpoint(TINY);
    try {
      expect(c.files).toEqual(["model.safetensors"]);
      expect(c.index).toBeUndefined();
      expect(c.tensors.get("model.norm.weight")).toMatchObject({
        dtype: "BF16",
        shape: [64],
        file: "model.safetensors",
      });
      expect((await c.readFloat32("lm_head.weight")).length).toBe(512 * 64);
    } finally {
      await c.close();
    }
  });

  it("unknown tensor name is a NOT_FOUND HippoError naming file and key", async () => {
    const r = await openSafetensors(join(TINY, "model.safetensors"));
    await expect(r.readBytes("nope")).rejects.toMatchObject({ code: "NOT_FOUND", location: { key: "nope" } });
    await r.close();
    await expect(r.readBytes("lm_head.weight")).rejects.toThrow(/closed/);
  });
});
