/**
 * The test infrastructure itself: the loopback Hub speaks the protocol @huggingface/hub's own functions expect
 * (and the headers Python's huggingface_hub reads), and the cache fixture is a cache @huggingface/hub's scanner
 * reads as Python's layout.
 */
import { existsSync } from "node:fs";
import { readFile, readlink } from "node:fs/promises";
import { join } from "node:path";
import {
  downloadFileToCacheDir,
  listFiles,
  pathsInfo,
  scanCachedRepo,
  snapshotDownload,
} from "@huggingface/hub";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gitBlobSha1, sha256Hex } from "../src/index.js";
import { hubFixture, lfsPointer, prepareRepo, writeCachedRepo } from "../src/testing/index.js";

const WEIGHTS = new Uint8Array(4096).map((_, i) => i % 256);
const SPEC = {
  id: "org/demo",
  files: [
    { path: "config.json", content: '{"model_type":"llama"}' },
    { path: "model.safetensors", content: WEIGHTS },
    { path: "sub/dir/notes.txt", content: "hello" },
  ],
  revisions: { v1: [{ path: "config.json", content: "{}" }] },
};

const fx = hubFixture("hippo-hub-testing-");
beforeAll(() => fx.start({ repos: [SPEC], treePageSize: 2 }));
afterAll(() => fx.close());

describe("the loopback Hub", () => {
  it("gives ids as the Hub does: git sha1 of small files, of the LFS pointer for LFS files, and the sha256", () => {
    const repo = prepareRepo(SPEC);
    const main = repo.revisions.get("main");
    const weights = main?.files.get("model.safetensors");
    expect(weights).toMatchObject({ lfs: true, sha256: sha256Hex(WEIGHTS), etag: sha256Hex(WEIGHTS) });
    expect(weights?.oid).toBe(gitBlobSha1(new TextEncoder().encode(lfsPointer(sha256Hex(WEIGHTS), 4096))));
    expect(main?.files.get("config.json")).toMatchObject({
      lfs: false,
      oid: gitBlobSha1(new TextEncoder().encode('{"model_type":"llama"}')),
    });
    // The same blob id git computes: `git hash-object` of "hello" (no newline).
    expect(gitBlobSha1(new TextEncoder().encode("hello"))).toBe("b6fc4c620b67d95f953a5c1c1230aaab5db5a1b0");
  });

  it("answers @huggingface/hub's listFiles (paginated), pathsInfo, downloadFileToCacheDir and snapshotDownload", async () => {
    const entries = [];
    for await (const e of listFiles({ repo: "org/demo", recursive: true, hubUrl: fx.hub.url }))
      entries.push(e);
    expect(entries.filter((e) => e.type === "file").map((e) => e.path)).toEqual([
      "config.json",
      "model.safetensors",
      "sub/dir/notes.txt",
    ]);
    expect(fx.hub.requests.filter((q) => q.url.includes("/tree/")).length).toBeGreaterThan(1);
    const infos = await pathsInfo({
      repo: "org/demo",
      paths: ["model.safetensors"],
      expand: true,
      hubUrl: fx.hub.url,
    });
    expect(infos[0]).toMatchObject({
      path: "model.safetensors",
      size: 4096,
      lfs: { oid: sha256Hex(WEIGHTS), size: 4096 },
    });
    const cacheDir = join(fx.tmp, "lib-cache");
    const pointer = await downloadFileToCacheDir({
      repo: "org/demo",
      path: "model.safetensors",
      hubUrl: fx.hub.url,
      cacheDir,
    });
    expect(new Uint8Array(await readFile(pointer))).toEqual(WEIGHTS);
    const snapshot = await snapshotDownload({
      repo: "org/demo",
      revision: "v1",
      hubUrl: fx.hub.url,
      cacheDir,
    });
    expect(snapshot).toBe(
      join(cacheDir, "models--org--demo", "snapshots", fx.hub.commitOf("org/demo", "v1")),
    );
    expect(await readFile(join(snapshot, "config.json"), "utf8")).toBe("{}");
  });

  it("sends the headers Python's huggingface_hub reads before the redirect, and serves ranges", async () => {
    const commit = fx.hub.commitOf("org/demo");
    const head = await fetch(`${fx.hub.url}/org/demo/resolve/main/model.safetensors`, {
      method: "HEAD",
      redirect: "manual",
    });
    expect(head.status).toBe(302);
    expect(head.headers.get("x-repo-commit")).toBe(commit);
    expect(head.headers.get("x-linked-etag")).toBe(`"${sha256Hex(WEIGHTS)}"`);
    expect(head.headers.get("x-linked-size")).toBe("4096");
    const location = head.headers.get("location") as string;
    expect(location.startsWith(fx.hub.storageUrl)).toBe(true);
    const part = await fetch(location, { headers: { Range: "bytes=4090-" } });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe("bytes 4090-4095/4096");
    expect(new Uint8Array(await part.arrayBuffer())).toEqual(WEIGHTS.slice(4090));
    expect((await fetch(location, { headers: { Range: "bytes=5000-" } })).status).toBe(416);
    const small = await fetch(`${fx.hub.url}/org/demo/resolve/main/config.json`);
    expect(small.headers.get("etag")).toBe(
      `"${gitBlobSha1(new TextEncoder().encode('{"model_type":"llama"}'))}"`,
    );
    const missing = await fetch(`${fx.hub.url}/org/demo/resolve/main/nope.json`);
    expect([missing.status, missing.headers.get("x-error-code")]).toEqual([404, "EntryNotFound"]);
    const rev = await fetch(`${fx.hub.url}/api/models/org/demo/revision/nope`);
    expect([rev.status, rev.headers.get("x-error-code")]).toEqual([404, "RevisionNotFound"]);
  });
});

describe("the Python-layout cache fixture", () => {
  it("writes blobs by hash, refs without newline and relative snapshot links that @huggingface/hub scans", async () => {
    const cacheDir = join(fx.tmp, "fixture");
    const cached = await writeCachedRepo(cacheDir, SPEC, { noExist: ["generation_config.json"] });
    const main = cached.commits.main as string;
    expect(await readFile(join(cached.storage, "refs", "main"), "utf8")).toBe(main);
    expect(await readlink(join(cached.snapshot(), "model.safetensors"))).toBe(
      `../../blobs/${sha256Hex(WEIGHTS)}`,
    );
    expect(await readlink(join(cached.snapshot(), "sub", "dir", "notes.txt"))).toBe(
      `../../../../blobs/${gitBlobSha1(new TextEncoder().encode("hello"))}`,
    );
    expect(existsSync(join(cached.storage, ".no_exist", main, "generation_config.json"))).toBe(true);
    const scanned = await scanCachedRepo(cached.storage);
    expect(scanned.id).toEqual({ name: "org/demo", type: "model" });
    const revisions = Object.fromEntries(scanned.revisions.map((r) => [r.commitOid, r.refs]));
    expect(revisions).toEqual({ [main]: ["main"], [cached.commits.v1 as string]: ["v1"] });
  });
});
