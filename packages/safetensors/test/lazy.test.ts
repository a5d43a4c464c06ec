/** The reader touches only the header and the tensor asked for: a 5 GB sparse file opens and reads instantly. */
import { open, truncate } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openSafetensors, writeSafetensors } from "../src/index.js";
import { tempDir } from "./helpers.js";

const { dir, cleanup } = await tempDir("lazy");
afterAll(cleanup);

describe("lazy reading", () => {
  it("opens a 5 GB (sparse) file and reads a tensor stored past 2^32 without reading the rest", async () => {
    const big = 5_000_000_000; // > 2^32: offsets must not be truncated to 32 bits anywhere
    const header = new TextEncoder().encode(
      JSON.stringify({
        big: { dtype: "U8", shape: [big], data_offsets: [0, big] },
        small: { dtype: "F32", shape: [4], data_offsets: [big, big + 16] },
      }),
    );
    const path = join(dir, "sparse.safetensors");
    const h = await open(path, "w");
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(header.byteLength), true);
    await h.write(len, 0, 8, 0);
    await h.write(header, 0, header.byteLength, 8);
    await h.write(new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer), 0, 16, 8 + header.byteLength + big);
    await h.close();

    const rssBefore = process.memoryUsage().rss;
    const r = await openSafetensors(path);
    try {
      expect(r.tensors.get("big")).toMatchObject({ byteOffset: 8 + header.byteLength, byteLength: big });
      expect(r.tensors.get("small")!.byteOffset).toBe(8 + header.byteLength + big);
      expect([...(await r.readFloat32("small"))]).toEqual([1, 2, 3, 4]);
    } finally {
      await r.close();
    }
    // Reading the whole file would cost 5 GB; the reader used next to nothing.
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(64 * 2 ** 20);
  });

  it("a file truncated after opening gives a clear error, not garbage", async () => {
    const path = join(dir, "shrinks.safetensors");
    await writeSafetensors(path, { a: { dtype: "F32", shape: [256], data: new Float32Array(256).fill(1) } });
    const r = await openSafetensors(path);
    await truncate(path, 100);
    await expect(r.readBytes("a")).rejects.toMatchObject({
      code: "INVALID_FORMAT",
      message: expect.stringMatching(/unexpected end of file.*expected 1024 bytes/),
    });
    await r.close();
  });
});
