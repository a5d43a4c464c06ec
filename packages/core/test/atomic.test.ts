import { mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  HippoError,
  isTempName,
  withAtomicFile,
  writeDirAtomic,
  writeFileAtomic,
  writeJsonAtomic,
} from "../src/index.js";

async function tempDir() {
  return mkdtemp(join(tmpdir(), "hippo-core-"));
}

describe("atomic writes", () => {
  it("writes strings, bytes and chunk streams, creating parent folders", async () => {
    const dir = await tempDir();
    await writeFileAtomic(join(dir, "a", "b.txt"), "hello");
    expect(await readFile(join(dir, "a", "b.txt"), "utf8")).toBe("hello");
    await writeFileAtomic(join(dir, "bytes.bin"), new Uint8Array([1, 2, 3]));
    expect([...(await readFile(join(dir, "bytes.bin")))]).toEqual([1, 2, 3]);
    async function* chunks() {
      yield new Uint8Array([4]);
      yield new Uint8Array([5, 6]);
    }
    await writeFileAtomic(join(dir, "stream.bin"), chunks());
    expect([...(await readFile(join(dir, "stream.bin")))]).toEqual([4, 5, 6]);
    await writeJsonAtomic(join(dir, "x.json"), { a: 1 });
    expect(await readFile(join(dir, "x.json"), "utf8")).toBe('{\n  "a": 1\n}\n');
  });

  it("leaves the old file and no temporary file when the writer fails", async () => {
    const dir = await tempDir();
    const target = join(dir, "model.bin");
    await writeFile(target, "old");
    await expect(
      withAtomicFile(target, async (handle) => {
        await handle.write("half of the new cont");
        throw new Error("crash mid-write");
      }),
    ).rejects.toThrow(HippoError);
    expect(await readFile(target, "utf8")).toBe("old");
    expect(await readdir(dir)).toEqual(["model.bin"]);
  });

  it("replaces a whole directory only when it is complete", async () => {
    const dir = await tempDir();
    const out = join(dir, "adapter");
    await writeDirAtomic(out, async (tmp) => {
      await writeFile(join(tmp, "a.json"), "1");
    });
    expect(await readdir(out)).toEqual(["a.json"]);
    await expect(
      writeDirAtomic(out, async (tmp) => {
        await writeFile(join(tmp, "b.json"), "2");
        throw new Error("killed");
      }),
    ).rejects.toThrow("killed");
    expect(await readdir(out)).toEqual(["a.json"]);
    expect((await readdir(dir)).filter(isTempName)).toEqual([]);
    await writeDirAtomic(out, async (tmp) => {
      await writeFile(join(tmp, "c.json"), "3");
    });
    expect(await readdir(out)).toEqual(["c.json"]);
    expect(await readdir(dir)).toEqual(["adapter"]);
  });
});
