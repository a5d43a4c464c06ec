/**
 * One crafted file per validation rule of the reference implementation (huggingface/safetensors
 * `read_metadata` / `validate`): each gives a HippoError naming the file and the key, with expected vs got,
 * and nothing is allocated from a claimed size.
 */
import { mkdir, symlink, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { HippoError } from "@hippocrates/core";
import { afterAll, describe, expect, it } from "vitest";
import { openCheckpoint, openSafetensors, writeSafetensors } from "../src/index.js";
import { craft, tempDir, writeCrafted } from "./helpers.js";

const { dir, cleanup } = await tempDir("validation");
afterAll(cleanup);

const f32 = (b: number, e: number, shape = [(e - b) / 4]) => ({ dtype: "F32", shape, data_offsets: [b, e] });

async function rejects(
  name: string,
  bytes: Uint8Array,
  message: RegExp,
  key?: string,
  options?: { maxHeaderBytes?: number },
): Promise<HippoError> {
  const path = await writeCrafted(dir, name, bytes);
  const err = await openSafetensors(path, options).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HippoError);
  const h = err as HippoError;
  expect(h.code).toBe("INVALID_FORMAT");
  expect(h.location.file).toBe(path);
  if (key !== undefined) expect(h.location.key).toBe(key);
  expect(h.message).toMatch(message);
  expect(h.message).toContain(path);
  return h;
}

describe("header length", () => {
  it("2^60 is refused before any allocation (bound: 100 MB)", async () => {
    const e = await rejects(
      "huge.safetensors",
      craft("{}", 0, 2n ** 60n),
      /header length too large/,
      "header length",
    );
    expect(e.expected).toBe("<= 100000000 bytes");
    expect(e.got).toBe(String(2n ** 60n));
  });

  it("2^64 - 1 (all ones) is refused too", async () => {
    await rejects("ones.safetensors", craft("{}", 0, 2n ** 64n - 1n), /header length too large/);
  });

  it("a length inside the bound but past the end of the file", async () => {
    const e = await rejects(
      "past.safetensors",
      craft("{}", 0, 1000n),
      /runs past the end of the file/,
      "header length",
    );
    expect(e.message).toContain("expected <= 2 (file size 10 - 8), got 1000");
  });

  it("a smaller maxHeaderBytes option is honoured", async () => {
    await rejects(
      "small-bound.safetensors",
      craft("{}      "),
      /too large.*expected <= 4 bytes, got 8/,
      "header length",
      {
        maxHeaderBytes: 4,
      },
    );
  });

  it("a file shorter than 8 bytes", async () => {
    await rejects("tiny.safetensors", new Uint8Array(5), /file too small.*expected >= 8 bytes, got 5 bytes/);
  });
});

describe("header text", () => {
  it("non-UTF-8 bytes", async () => {
    const bytes = craft('{"a":1}');
    bytes[10] = 0xff; // invalid UTF-8 lead byte inside the JSON
    await rejects("utf8.safetensors", bytes, /header is not valid UTF-8/, "header");
  });

  it("not a JSON object: an array", async () => {
    await rejects(
      "array.safetensors",
      craft("[1, 2]"),
      /header must be a JSON object.*got "\[1, 2\]"/,
      "header",
    );
  });

  it("not JSON at all", async () => {
    await rejects("syntax.safetensors", craft('{"a": '), /invalid JSON/);
  });

  it("a JSON string that is not an object", async () => {
    await rejects("string.safetensors", craft('"{}"'), /must be a JSON object/);
  });

  it("a tensor entry that is not an object", async () => {
    await rejects(
      "entry.safetensors",
      craft({ w: [1, 2] }),
      /tensor entry must be an object.*got array\(2\)/,
      "w",
    );
  });
});

/** A crafted file that must be refused (see `rejects`), and what else its error must say (`check`). */
interface Rejection {
  title: string;
  file: string;
  bytes: Uint8Array;
  message: RegExp;
  key?: string;
  check?: (e: HippoError) => void;
}

const refused =
  ({ file, bytes, message, key, check }: Rejection) =>
  async () => {
    const e = await rejects(file, bytes, message, key);
    check?.(e);
  };

describe("tensor entries", () => {
  const cases: Rejection[] = [
    {
      title: "unknown dtype",
      file: "dtype.safetensors",
      bytes: craft({ w: { dtype: "F8_E4M3", shape: [4], data_offsets: [0, 4] } }, 4),
      message: /unknown or unsupported dtype/,
      key: "w.dtype",
      check: (e) => expect(e.got).toBe('"F8_E4M3"'),
    },
    {
      title: "negative shape",
      file: "neg.safetensors",
      bytes: craft({ w: f32(0, 4, [-1]) }, 4),
      message: /shape\[0\] must be a non-negative integer.*got number -1/,
      key: "w.shape",
    },
    {
      title: "fractional shape",
      file: "float.safetensors",
      bytes: craft({ w: f32(0, 8, [2, 0.5]) }, 8),
      message: /shape\[1\].*got number 0.5/,
      key: "w.shape",
    },
    {
      title: "shape as a string",
      file: "sshape.safetensors",
      bytes: craft({ w: { dtype: "U8", shape: "4", data_offsets: [0, 4] } }, 4),
      message: /shape must be an array/,
    },
    {
      title: "byte length != product(shape) x dtype size",
      file: "size.safetensors",
      bytes: craft({ w: f32(0, 12, [2, 2]) }, 12),
      message: /byte length does not match shape x dtype size/,
      key: "w",
      check: (e) =>
        expect(e.message).toContain("expected 16 bytes (F32 [2, 2]), got 12 bytes (data_offsets [0, 12])"),
    },
    {
      // 2^32 x 2^32 x 4 bytes wraps to 0 in u64 arithmetic; BigInt sees 2^66.
      title: "a shape whose product overflows 64 bits is a mismatch, not a wrap-around",
      file: "overflow.safetensors",
      bytes: craft({ w: { dtype: "F32", shape: [2 ** 32, 2 ** 32], data_offsets: [0, 0] } }),
      message: /byte length does not match/,
      key: "w",
      check: (e) => expect(e.expected).toContain(String(2n ** 66n)),
    },
    {
      title: "a claimed multi-GB tensor in a small file is refused without allocating it",
      file: "claim.safetensors",
      bytes: craft({ w: { dtype: "U8", shape: [2 ** 40], data_offsets: [0, 2 ** 40] } }, 16),
      message: /runs past the end of the file/,
      key: "w.data_offsets",
    },
  ];
  for (const c of cases) it(c.title, refused(c));

  it("data_offsets malformed", async () => {
    await rejects(
      "offs.safetensors",
      craft({ w: { dtype: "U8", shape: [4], data_offsets: [0] } }, 4),
      /data_offsets must be/,
      "w.data_offsets",
    );
    await rejects(
      "offs2.safetensors",
      craft({ w: { dtype: "U8", shape: [4], data_offsets: [-4, 0] } }, 4),
      /data_offsets must be/,
    );
    await rejects(
      "offs3.safetensors",
      craft({ w: { dtype: "U8", shape: [0], data_offsets: [4, 0] } }, 4),
      /end before begin/,
    );
  });
});

describe("data region", () => {
  const cases: Rejection[] = [
    {
      title: "overlapping offsets",
      file: "overlap.safetensors",
      bytes: craft({ a: f32(0, 8), b: f32(4, 12) }, 12),
      message: /overlaps the previous tensor/,
      key: "b.data_offsets",
      check: (e) => expect(e.message).toContain("expected begin >= 8, got [4, 12]"),
    },
    {
      title: "a hole between tensors",
      file: "hole.safetensors",
      bytes: craft({ a: f32(0, 4), b: f32(8, 12) }, 12),
      message: /hole in the data region/,
      key: "b.data_offsets",
      check: (e) => expect(e.message).toContain("expected begin = 4, got [8, 12]"),
    },
    {
      title: "first tensor not at 0",
      file: "start.safetensors",
      bytes: craft({ a: f32(4, 8) }, 8),
      message: /hole.*expected begin = 0, got \[4, 8\]/,
    },
    {
      title: "offsets past the end of the data",
      file: "end.safetensors",
      bytes: craft({ a: f32(0, 4), b: f32(4, 16) }, 8),
      message: /runs past the end of the file.*expected end <= 8, got 16/,
    },
    {
      title: "trailing bytes after the last tensor",
      file: "trailing.safetensors",
      bytes: craft({ a: f32(0, 4) }, 8),
      message: /do not cover the data region.*expected last tensor ends at 8/,
    },
  ];
  for (const c of cases) it(c.title, refused(c));

  it("header order may differ from offset order (valid, as the reference allows)", async () => {
    const path = await writeCrafted(
      dir,
      "order.safetensors",
      craft({ b: f32(4, 8), a: f32(0, 4) }, new Uint8Array(8).fill(1)),
    );
    const r = await openSafetensors(path);
    expect([...r.tensors.keys()]).toEqual(["b", "a"]);
    await r.close();
  });

  it("tensors keep the header's key order, with integer-like names and escapes in names", async () => {
    const u8 = (b: number) => JSON.stringify({ dtype: "U8", shape: [1], data_offsets: [b, b + 1] });
    const weird = 'we\\"ird,{[}'; // backslash, quote, comma, braces inside a key
    const header = `{"10":${u8(0)}, ${JSON.stringify(weird)} : ${u8(1)},"2":${u8(2)}}`;
    const path = await writeCrafted(dir, "keys.safetensors", craft(header, new Uint8Array([1, 2, 3])));
    const r = await openSafetensors(path);
    expect([...r.tensors.keys()]).toEqual(["10", weird, "2"]);
    expect([...(await r.readBytes(weird))]).toEqual([2]);
    await r.close();
  });
});

describe("__metadata__ and prototype keys", () => {
  it("__metadata__ with a non-string value", async () => {
    const e = await rejects(
      "meta.safetensors",
      craft({ __metadata__: { format: "pt", step: 3 } }),
      /__metadata__ values must be strings/,
    );
    expect(e.location.key).toBe("__metadata__.step");
    expect(e.message).toContain("expected string, got number 3");
  });

  it("__metadata__ not an object", async () => {
    await rejects(
      "meta2.safetensors",
      craft({ __metadata__: ["pt"] }),
      /__metadata__ must be an object/,
      "__metadata__",
    );
  });

  it("a __proto__ tensor and __proto__ metadata key are plain names; Object.prototype stays clean", async () => {
    const header =
      '{"__metadata__":{"__proto__":"meta"},"__proto__":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}';
    const path = await writeCrafted(dir, "proto.safetensors", craft(header, new Uint8Array([3, 4])));
    const r = await openSafetensors(path);
    try {
      expect([...r.tensors.keys()]).toEqual(["__proto__"]);
      expect([...(await r.readBytes("__proto__"))]).toEqual([3, 4]);
      expect(Object.keys(r.metadata)).toEqual(["__proto__"]);
      expect(Object.getOwnPropertyDescriptor(r.metadata, "__proto__")?.value).toBe("meta");
      expect(({} as Record<string, unknown>).dtype).toBeUndefined();
      expect(Object.prototype).not.toHaveProperty("dtype");
    } finally {
      await r.close();
    }
  });

  it("a bad __proto__ entry is rejected cleanly with its name", async () => {
    await rejects(
      "proto-bad.safetensors",
      craft('{"__proto__":{"dtype":"X","shape":[],"data_offsets":[0,0]}}'),
      /unknown/,
      "__proto__.dtype",
    );
  });
});

describe("index files (sharded checkpoints)", () => {
  async function checkpointDir(name: string, weightMap: Record<string, string>): Promise<string> {
    const d = join(dir, name);
    await mkdir(d, { recursive: true });
    await writeSafetensors(join(d, "model-00001-of-00001.safetensors"), {
      w: { dtype: "U8", shape: [1], data: new Uint8Array([1]) },
    });
    await writeFile(
      join(d, "model.safetensors.index.json"),
      JSON.stringify({ metadata: { total_size: 1 }, weight_map: weightMap }),
    );
    return d;
  }

  async function indexError(d: string): Promise<HippoError> {
    const e = await openCheckpoint(d).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(HippoError);
    expect((e as HippoError).location.file).toBe(join(d, "model.safetensors.index.json"));
    return e as HippoError;
  }

  it("'../' in weight_map", async () => {
    const e = await indexError(await checkpointDir("dotdot", { w: "../outside.safetensors" }));
    expect(e.code).toBe("UNSAFE_PATH");
    expect(e.location.key).toBe("weight_map.w");
    expect(e.message).toMatch(/path separators or '\.\.'.*got "\.\.\/outside\.safetensors"/);
  });

  it("an absolute path in weight_map", async () => {
    const e = await indexError(await checkpointDir("absolute", { w: "/etc/passwd" }));
    expect(e.code).toBe("UNSAFE_PATH");
    expect(e.message).toMatch(/absolute path in weight_map/);
  });

  it("a sub-folder path and a bare '..'", async () => {
    expect((await indexError(await checkpointDir("subdir", { w: "sub/model.safetensors" }))).code).toBe(
      "UNSAFE_PATH",
    );
    expect((await indexError(await checkpointDir("bare", { w: ".." }))).code).toBe("UNSAFE_PATH");
  });

  it("a symlink that points outside the folder", async () => {
    const d = await checkpointDir("link", { w: "evil.safetensors" });
    await symlink(join(dir, "order.safetensors"), join(d, "evil.safetensors"));
    const e = await indexError(d);
    expect(e.code).toBe("UNSAFE_PATH");
    expect(e.message).toMatch(/link that leaves the folder/);
  });

  it("a missing shard file", async () => {
    const e = await indexError(await checkpointDir("missing", { w: "model-00002-of-00002.safetensors" }));
    expect(e.code).toBe("NOT_FOUND");
    expect(e.message).toMatch(/shard file named by the index does not exist.*model-00002-of-00002/);
  });

  it("a tensor the shard does not contain", async () => {
    const e = await indexError(
      await checkpointDir("absent", {
        w: "model-00001-of-00001.safetensors",
        v: "model-00001-of-00001.safetensors",
      }),
    );
    expect(e.code).toBe("INVALID_FORMAT");
    expect(e.location.key).toBe("weight_map.v");
  });

  it("weight_map missing or not an object; a non-string file name", async () => {
    const d = await checkpointDir("nomap", {});
    await writeFile(join(d, "model.safetensors.index.json"), JSON.stringify({ metadata: {} }));
    expect((await indexError(d)).message).toMatch(/no weight_map object/);
    const d2 = await checkpointDir("numfile", { w: 3 } as unknown as Record<string, string>);
    expect((await indexError(d2)).message).toMatch(/weight_map value must be a file name.*got number 3/);
  });

  it("an index larger than 100 MB is refused before it is read", async () => {
    const d = await checkpointDir("hugeindex", { w: "model-00001-of-00001.safetensors" });
    await truncate(join(d, "model.safetensors.index.json"), 200_000_000); // sparse: cheap to create
    expect((await indexError(d)).message).toMatch(/index file too large.*got 200000000 bytes/);
  });

  it("a __proto__ tensor in weight_map is an ordinary name", async () => {
    const d = join(dir, "proto-index");
    await mkdir(d);
    await writeSafetensors(join(d, "a.safetensors"), [
      ["__proto__", { dtype: "U8", shape: [1], data: new Uint8Array([8]) }],
    ]);
    await writeFile(join(d, "model.safetensors.index.json"), '{"weight_map":{"__proto__":"a.safetensors"}}');
    const c = await openCheckpoint(d);
    expect([...c.tensors.keys()]).toEqual(["__proto__"]);
    expect([...(await c.readBytes("__proto__"))]).toEqual([8]);
    await c.close();
  });
});
