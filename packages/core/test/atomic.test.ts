import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
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
  it("remove the file's own temporaries left by a killed writer, and nothing else", async () => {
    const dir = await tempDir();
    const dead = spawn(process.execPath, ["-e", ""]);
    const deadPid = dead.pid as number;
    await new Promise((r) => dead.on("exit", r));
    const alive = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)"]);
    try {
      const names = [
        `.x.txt.tmp-${deadPid}-deadbeef`, // x.txt's, from a process that is gone: removed
        `.x.txt.tmp-${alive.pid}-0badf00d`, // x.txt's, from a writer that still runs: kept
        `.y.txt.tmp-${deadPid}-deadbeef`, // another file's: kept
        ".x.txt.tmp-notes", // not a name the helpers make: kept
      ];
      for (const n of names) await writeFile(join(dir, n), "");
      await writeFileAtomic(join(dir, "x.txt"), "new");
      expect((await readdir(dir)).sort()).toEqual([...names.slice(1), "x.txt"].sort());
    } finally {
      alive.kill();
    }
  });

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
      writeDirAtomic(
        out,
        async (tmp) => {
          await writeFile(join(tmp, "b.json"), "2");
          throw new Error("killed");
        },
        { mayReplace: () => {} },
      ),
    ).rejects.toThrow("killed");
    expect(await readdir(out)).toEqual(["a.json"]);
    expect((await readdir(dir)).filter(isTempName)).toEqual([]);
    await writeDirAtomic(
      out,
      async (tmp) => {
        await writeFile(join(tmp, "c.json"), "3");
      },
      { mayReplace: () => {} }, // the caller knows the folder holds its own earlier output
    );
    expect(await readdir(out)).toEqual(["c.json"]);
    expect(await readdir(dir)).toEqual(["adapter"]);
  });

  it("refuses to replace a folder that holds files, before fill runs, unless mayReplace allows it", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "config.yaml"), "outDir: .");
    await writeFile(join(dir, "input.jsonl"), "{}");
    let filled = false;
    const err = await writeDirAtomic(dir, async () => {
      filled = true;
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HippoError);
    expect((err as HippoError).message).toContain(dir);
    expect((err as HippoError).message).toMatch(/config\.yaml, input\.jsonl/);
    expect(filled).toBe(false);
    expect((await readdir(dir)).sort()).toEqual(["config.yaml", "input.jsonl"]);
    // mayReplace sees the entries and can refuse with its own reason.
    const seen: string[][] = [];
    await expect(
      writeDirAtomic(dir, async () => {}, {
        mayReplace: (_d, entries) => {
          seen.push([...entries].sort());
          throw new HippoError("INVALID_ARGUMENT", "not mine");
        },
      }),
    ).rejects.toThrow("not mine");
    expect(seen).toEqual([["config.yaml", "input.jsonl"]]);
    expect((await readdir(dir)).sort()).toEqual(["config.yaml", "input.jsonl"]);
    // An empty folder is replaced.
    const empty = join(dir, "empty");
    await mkdir(empty);
    await writeDirAtomic(empty, async (tmp) => writeFile(join(tmp, "x"), "1"));
    expect(await readdir(empty)).toEqual(["x"]);
  });

  it("never replaces a regular file with a folder, even when mayReplace would allow it", async () => {
    const dir = await tempDir();
    const file = join(dir, "out");
    await writeFile(file, "precious");
    await expect(writeDirAtomic(file, async () => {}, { mayReplace: () => {} })).rejects.toThrow(
      /not a folder, and an output folder never replaces it/,
    );
    expect(await readFile(file, "utf8")).toBe("precious");
    expect(await readdir(dir)).toEqual(["out"]);
  });

  it("follows a symbolic link to a folder: the folder is replaced, the link kept", async () => {
    const dir = await tempDir();
    await mkdir(join(dir, "real"));
    await symlink(join(dir, "real"), join(dir, "link"));
    await writeDirAtomic(join(dir, "link"), async (tmp) => writeFile(join(tmp, "a"), "1"));
    expect(await readdir(join(dir, "real"))).toEqual(["a"]);
    expect((await stat(join(dir, "link"))).isDirectory()).toBe(true);
    expect((await readdir(dir)).sort()).toEqual(["link", "real"]);
  });
});
