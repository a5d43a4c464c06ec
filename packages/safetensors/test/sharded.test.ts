/** Sharded (HF) layout: write with a shard limit, read back through the index, streaming behaviour. */
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isTempName } from "@hippocrates/core";
import { afterAll, describe, expect, it } from "vitest";
import {
  openCheckpoint,
  openSafetensors,
  type TensorToWrite,
  writeShardedSafetensors,
} from "../src/index.js";
import { listDir, tempDir } from "./helpers.js";

const { dir, cleanup } = await tempDir("sharded");
afterAll(cleanup);

/** n F32 tensors of 64 floats (256 bytes) each, values i*1000 + j. */
function tensors(n: number): [string, TensorToWrite][] {
  return Array.from({ length: n }, (_, i) => [
    `layers.${i}.weight`,
    { dtype: "F32", shape: [8, 8], data: Float32Array.from({ length: 64 }, (_, j) => i * 1000 + j) },
  ]);
}

describe("writeShardedSafetensors + openCheckpoint", () => {
  it("splits into HF-named shards with an index; reads back every tensor", async () => {
    const d = join(dir, "five");
    // 600 bytes per shard: two 256-byte tensors fit, a third does not -> 5 tensors in 3 shards.
    const res = await writeShardedSafetensors(d, tensors(5), {
      maxShardBytes: 600,
      metadata: { format: "pt" },
    });
    expect(res).toEqual({
      files: [
        "model-00001-of-00003.safetensors",
        "model-00002-of-00003.safetensors",
        "model-00003-of-00003.safetensors",
      ],
      index: "model.safetensors.index.json",
    });
    expect(await listDir(d)).toEqual([...res.files, "model.safetensors.index.json"].sort());
    const index = JSON.parse(await readFile(join(d, res.index!), "utf8"));
    expect(index.metadata).toEqual({ total_size: 5 * 256 });
    expect(index.weight_map).toEqual({
      "layers.0.weight": "model-00001-of-00003.safetensors",
      "layers.1.weight": "model-00001-of-00003.safetensors",
      "layers.2.weight": "model-00002-of-00003.safetensors",
      "layers.3.weight": "model-00002-of-00003.safetensors",
      "layers.4.weight": "model-00003-of-00003.safetensors",
    });
    const shard = await openSafetensors(join(d, res.files[1]!));
    expect({ ...shard.metadata }).toEqual({ format: "pt" });
    await shard.close();

    for (const target of [d, join(d, res.index!)]) {
      const c = await openCheckpoint(target);
      try {
        expect(c.files).toEqual(res.files);
        expect(c.index).toBe(join(d, "model.safetensors.index.json"));
        expect([...c.tensors.keys()]).toEqual(tensors(5).map(([n]) => n));
        expect(c.tensors.get("layers.4.weight")).toMatchObject({
          file: "model-00003-of-00003.safetensors",
          shape: [8, 8],
        });
        for (const [name, t] of tensors(5)) expect(await c.readFloat32(name)).toEqual(t.data);
      } finally {
        await c.close();
      }
    }
  });

  it("writes a single <prefix>.safetensors without index when everything fits, and cleans a stale layout", async () => {
    const d = join(dir, "single");
    await writeShardedSafetensors(d, tensors(4), { maxShardBytes: 300 });
    expect((await listDir(d)).length).toBe(5); // 4 shards + index
    await writeFile(join(d, "config.json"), "{}"); // unrelated files stay
    const res = await writeShardedSafetensors(d, tensors(4), { maxShardBytes: 10_000 });
    expect(res).toEqual({ files: ["model.safetensors"] });
    expect(await listDir(d)).toEqual(["config.json", "model.safetensors"]);
    const c = await openCheckpoint(d);
    expect(c.files).toEqual(["model.safetensors"]);
    expect(await c.readFloat32("layers.3.weight")).toEqual(tensors(4)[3]![1].data);
    await c.close();
  });

  it("a tensor larger than the limit gets a shard of its own", async () => {
    const d = join(dir, "big");
    const big: [string, TensorToWrite] = [
      "big",
      { dtype: "U8", shape: [1000], data: new Uint8Array(1000).fill(7) },
    ];
    const res = await writeShardedSafetensors(d, [tensors(1)[0]!, big, tensors(2)[1]!], {
      maxShardBytes: 500,
    });
    expect(res.files.length).toBe(3);
    const c = await openCheckpoint(d);
    expect(c.tensors.get("big")!.file).toBe("model-00002-of-00003.safetensors");
    expect((await c.readBytes("big")).every((b) => b === 7)).toBe(true);
    await c.close();
  });

  it("any prefix (e.g. adapter_model) and its index are found in a folder", async () => {
    const d = join(dir, "adapter");
    const res = await writeShardedSafetensors(d, tensors(3), { maxShardBytes: 256, prefix: "adapter_model" });
    expect(res.index).toBe("adapter_model.safetensors.index.json");
    const c = await openCheckpoint(d);
    expect(c.files.length).toBe(3);
    await c.close();
    const one = join(dir, "adapter-one");
    await writeShardedSafetensors(one, tensors(1), { prefix: "adapter_model" });
    const c1 = await openCheckpoint(one);
    expect(c1.files).toEqual(["adapter_model.safetensors"]);
    await c1.close();
  });

  it("consumes an async iterable shard by shard: shard 1 is on disk before the last tensor is produced", async () => {
    const d = join(dir, "stream");
    const seenOnDisk: number[] = [];
    const produced: string[] = [];
    async function* model(): AsyncGenerator<[string, TensorToWrite]> {
      for (const [name, t] of tensors(6)) {
        // What has been written (staged, under a temporary name) when this tensor is requested.
        seenOnDisk.push((await readdir(d).catch(() => [])).filter(isTempName).length);
        const data = () => {
          produced.push(name);
          return t.data as Float32Array;
        };
        yield [name, { ...t, data }];
      }
    }
    const res = await writeShardedSafetensors(d, model(), { maxShardBytes: 512 });
    expect(res.files.length).toBe(3);
    // Two tensors per shard. A shard is written when the next tensor does not fit, i.e. once tensor 3 has
    // arrived; so by the request for tensor 4 shard 1 is on disk, by tensor 6 shard 2.
    expect(seenOnDisk).toEqual([0, 0, 0, 1, 1, 2]);
    expect(produced).toEqual(tensors(6).map(([n]) => n));
    expect((await listDir(d)).some(isTempName)).toBe(false);
  });

  it("a failure midway removes the staged shards and leaves no index", async () => {
    const d = join(dir, "fail");
    async function* model(): AsyncGenerator<[string, TensorToWrite]> {
      yield* tensors(3);
      throw new Error("out of tensors");
    }
    await expect(writeShardedSafetensors(d, model(), { maxShardBytes: 256 })).rejects.toThrow(
      /out of tensors/,
    );
    expect(await listDir(d)).toEqual([]);
    await expect(
      writeShardedSafetensors(d, [...tensors(2), ["layers.0.weight", tensors(1)[0]![1]]], {
        maxShardBytes: 256,
      }),
    ).rejects.toThrow(/duplicate tensor name/);
    expect(await listDir(d)).toEqual([]);
  });

  it("a folder with several candidates and no model.* file is an error listing them", async () => {
    const d = join(dir, "ambiguous");
    await writeShardedSafetensors(d, tensors(1), { prefix: "a" });
    await writeShardedSafetensors(d, tensors(1), { prefix: "b" });
    await expect(openCheckpoint(d)).rejects.toThrow(/cannot pick.*got a.safetensors, b.safetensors/);
    await expect(openCheckpoint(join(dir, "nothing-here"))).rejects.toMatchObject({ code: "NOT_FOUND" });
  });
});
