import { mkdtemp, readFile, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  appendJsonl,
  checkRegularFile,
  createJsonlWriter,
  decodeUtf8,
  firstInvalidUtf8,
  HippoError,
  pathExists,
  readJsonFile,
  readJsonl,
  readJsonlObjects,
  readTextFile,
  writeJsonlAtomic,
} from "../src/index.js";

const dir = () => mkdtemp(join(tmpdir(), "hippo-jsonl-"));

async function collect(path: string, options = {}) {
  const out = [];
  for await (const r of readJsonl(path, options)) out.push(r);
  return out;
}

async function errorOf(p: Promise<unknown>): Promise<HippoError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof HippoError) return e;
    throw e;
  }
  throw new Error("expected an error");
}

describe("strict UTF-8", () => {
  it("finds the first byte that is not UTF-8 (overlong, surrogate, truncated, stray continuation)", () => {
    const enc = new TextEncoder();
    expect(firstInvalidUtf8(enc.encode("héllo 🦙"))).toBe(-1);
    expect(firstInvalidUtf8(Uint8Array.from([0x61, 0xc0, 0x80]))).toBe(1); // overlong NUL
    expect(firstInvalidUtf8(Uint8Array.from([0x61, 0x62, 0xed, 0xa0, 0x80]))).toBe(2); // U+D800
    expect(firstInvalidUtf8(Uint8Array.from([0x61, 0xe2, 0x82]))).toBe(1); // cut short
    expect(firstInvalidUtf8(Uint8Array.from([0x80]))).toBe(0);
    expect(firstInvalidUtf8(Uint8Array.from([0xf4, 0x90, 0x80, 0x80]))).toBe(0); // > U+10FFFF
  });

  it("decodeUtf8 names the line of a bad byte instead of writing U+FFFD", () => {
    const bytes = Uint8Array.from([...new TextEncoder().encode("ok\nstill ok\nbad "), 0xe9, 0x0a]);
    const e = (() => {
      try {
        decodeUtf8(bytes, "corpus.txt");
      } catch (err) {
        return err as HippoError;
      }
      throw new Error("no error");
    })();
    expect(e.location).toEqual({ file: "corpus.txt", line: 3 });
    expect(e.message).toContain("invalid UTF-8 at byte 5 of the line");
    expect(e.message).toContain("e9");
  });

  it("readTextFile and readJsonFile reject invalid UTF-8 and drop a BOM", async () => {
    const d = await dir();
    await writeFile(
      join(d, "bom.json"),
      Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"a":1}')]),
    );
    expect(await readJsonFile(join(d, "bom.json"))).toEqual({ a: 1 });
    await writeFile(
      join(d, "latin1.json"),
      Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xe9, 0x22, 0x7d]),
    );
    expect((await errorOf(readJsonFile(join(d, "latin1.json")))).code).toBe("INVALID_FORMAT");
    expect((await errorOf(readTextFile(join(d, "missing.txt")))).code).toBe("NOT_FOUND");
  });

  it("checkRegularFile names the path of a missing file or a folder; pathExists counts a dangling link as missing", async () => {
    const d = await dir();
    const f = join(d, "a.txt");
    await writeFile(f, "a");
    await checkRegularFile(f);
    const missing = await errorOf(checkRegularFile(join(d, "none.txt")));
    expect([missing.code, missing.location.file]).toEqual(["NOT_FOUND", join(d, "none.txt")]);
    expect(missing.message).toMatch(/cannot read file: ENOENT/);
    const folder = await errorOf(checkRegularFile(d, "a JSONL file"));
    expect([folder.code, folder.reason, folder.expected]).toEqual([
      "INVALID_ARGUMENT",
      "not a regular file",
      "a JSONL file",
    ]);
    expect(await pathExists(f)).toBe(true);
    expect(await pathExists(d)).toBe(true);
    await symlink(join(d, "gone.txt"), join(d, "dangling"));
    expect(await pathExists(join(d, "dangling"))).toBe(false);
  });
});

describe("readJsonl", () => {
  it("yields values with 1-based line numbers, skipping blank lines and CRLF endings", async () => {
    const d = await dir();
    const f = join(d, "a.jsonl");
    await writeFile(f, '{"a":1}\r\n\n  \n[2]\n"x"');
    expect(await collect(f)).toEqual([
      { value: { a: 1 }, line: 1 },
      { value: [2], line: 4 },
      { value: "x", line: 5 },
    ]);
  });

  it("reads lines that span stream chunks in bounded pieces", async () => {
    const d = await dir();
    const f = join(d, "big.jsonl");
    const rows = Array.from({ length: 3000 }, (_, i) => ({ i, text: "é".repeat(i % 97) }));
    await writeFile(f, rows.map((r) => `${JSON.stringify(r)}\n`).join(""));
    const got = await collect(f);
    expect(got.map((r) => r.value)).toEqual(rows);
    expect(got.at(-1)?.line).toBe(3000);
  });

  it("names file and line for invalid JSON and for invalid UTF-8, or passes them to onInvalidLine", async () => {
    const d = await dir();
    const f = join(d, "bad.jsonl");
    await writeFile(
      f,
      Buffer.concat([
        Buffer.from('{"a":1}\n{"a":\n{"t":"'),
        Buffer.from([0xff]),
        Buffer.from('"}\n{"a":4}\n'),
      ]),
    );
    const e = await errorOf(collect(f));
    expect(e.location).toEqual({ file: f, line: 2 });
    const bad: HippoError[] = [];
    const got = await collect(f, { onInvalidLine: (x: HippoError) => bad.push(x) });
    expect(got.map((r) => r.line)).toEqual([1, 4]);
    expect(bad.map((x) => x.location.line)).toEqual([2, 3]);
    expect(bad[1]?.message).toContain("UTF-8");
  });

  it("reports a torn last line (no newline, not JSON) with its byte offset when asked", async () => {
    const d = await dir();
    const f = join(d, "cache.jsonl");
    await writeFile(f, '{"k":1}\n{"k":2}\n{"k":');
    let torn: { line: number; offset: number } | undefined;
    const got = await collect(f, { onTornTail: (t: { line: number; offset: number }) => (torn = t) });
    expect(got.map((r) => r.value)).toEqual([{ k: 1 }, { k: 2 }]);
    expect(torn).toEqual({ line: 3, offset: 16 });
    // Without the option, a torn tail is an error like any other bad line.
    expect((await errorOf(collect(f))).location.line).toBe(3);
  });

  it("refuses a line longer than maxLineBytes instead of buffering it", async () => {
    const d = await dir();
    const f = join(d, "long.jsonl");
    await writeFile(f, `"${"x".repeat(200_000)}"\n`);
    const e = await errorOf(collect(f, { maxLineBytes: 100_000 }));
    expect(e.message).toContain("line too long");
  });

  it("readJsonlObjects requires objects and errors on a missing file or a folder", async () => {
    const d = await dir();
    const f = join(d, "o.jsonl");
    await writeFile(f, '{"a":1}\n[1]\n');
    expect((await errorOf(readJsonlObjects(f))).location).toEqual({ file: f, line: 2 });
    expect((await errorOf(readJsonlObjects(join(d, "none.jsonl")))).code).toBe("NOT_FOUND");
    expect((await errorOf(readJsonlObjects(d))).message).toContain("not a regular file");
    const proto = join(d, "p.jsonl");
    await writeFile(proto, '{"__proto__":{"polluted":true}}\n');
    const [row] = await readJsonlObjects(proto);
    expect(Object.getPrototypeOf(row?.record)).toBe(null);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe("writing JSONL", () => {
  it("writeJsonlAtomic, appendJsonl and createJsonlWriter write lines readJsonl reads back", async () => {
    const d = await dir();
    const a = join(d, "a.jsonl");
    await writeJsonlAtomic(a, [{ x: 1 }, { y: "é" }]);
    await appendJsonl(a, [{ z: 3 }]);
    expect((await collect(a)).map((r) => r.value)).toEqual([{ x: 1 }, { y: "é" }, { z: 3 }]);
    const b = join(d, "b.jsonl");
    const w = await createJsonlWriter(b, 8);
    for (let i = 0; i < 5; i++) await w.write({ i });
    const summary = await w.close();
    expect(summary.records).toBe(5);
    expect(summary.bytes).toBe((await readFile(b)).byteLength);
    await expect(createJsonlWriter(b)).rejects.toThrow(); // never overwrites
  });
});
