/**
 * resolvePretrained against the loopback Hub and Python-layout caches: what is fetched, what the cache looks
 * like afterwards (checked with @huggingface/hub's own cache scanner), no request when cached, offline mode,
 * resume after an interrupted or killed download, verification, gated/private/404/pickle messages.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { lstat, mkdir, readdir, readFile, readlink, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { scanCachedRepo } from "@huggingface/hub";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  type PretrainedKind,
  type ResolvedPretrained,
  type ResolveOptions,
  resolvePretrained,
} from "../src/index.js";
import {
  hubFixture,
  prepareRepo,
  type RepoFileSpec,
  recordingProgress,
  saveEnv,
  writeCachedRepo,
} from "../src/testing/index.js";
import { rejection, SHARED } from "./helpers.js";

const here = dirname(fileURLToPath(import.meta.url));
const TINY = join(SHARED, "models/tiny-llama-hf");
const LLAMA_TOK = join(SHARED, "tokenizers/llama2");

const fx = hubFixture("hippo-hub-resolve-");
let modelFiles: RepoFileSpec[];
let tokenizerFiles: RepoFileSpec[];
/** 2.5 MB of LFS bytes so that a download can be cut half-way. */
const BIG = new Uint8Array(2_500_000).map((_, i) => (i * 7919) % 251);

async function read(path: string): Promise<Uint8Array> {
  return new Uint8Array(await readFile(path));
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
// Compared by hash: a deep toEqual over millions of bytes takes vitest tens of seconds.
const BIG_SHA = sha256(BIG);

beforeAll(async () => {
  modelFiles = [
    { path: "config.json", content: await read(join(TINY, "config.json")) },
    { path: "model.safetensors", content: await read(join(TINY, "model.safetensors")) },
    { path: "pytorch_model.bin", content: "not needed: a pickle the resolver must not fetch" },
    { path: "README.md", content: "---\nlicense: mit\n---\n# tiny\n" },
    { path: ".gitattributes", content: "*.safetensors filter=lfs diff=lfs merge=lfs -text\n" },
  ];
  tokenizerFiles = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
  ].map((name) => ({ path: name, content: new Uint8Array(0) }));
  for (const f of tokenizerFiles) f.content = await read(join(LLAMA_TOK, f.path));
  await fx.start({
    treePageSize: 3, // exercise the tree API's Link pagination
    repos: [
      { id: "org/tiny", files: [...modelFiles, ...tokenizerFiles] },
      {
        id: "org/sharded",
        files: [
          { path: "config.json", content: "{}" },
          {
            path: "model.safetensors.index.json",
            content: JSON.stringify({
              metadata: { total_size: 10 },
              weight_map: { a: "model-00001-of-00002.safetensors", b: "model-00002-of-00002.safetensors" },
            }),
          },
          { path: "model-00001-of-00002.safetensors", content: "shard one" },
          { path: "model-00002-of-00002.safetensors", content: "shard two" },
        ],
      },
      {
        id: "org/big",
        files: [
          { path: "config.json", content: "{}" },
          { path: "model.safetensors", content: BIG },
        ],
      },
      {
        id: "org/pickled",
        files: [
          { path: "config.json", content: "{}" },
          { path: "pytorch_model.bin", content: "pickle" },
        ],
        revisions: {
          "refs/pr/1": [
            { path: "config.json", content: "{}" },
            { path: "model.safetensors", content: "converted" },
          ],
        },
      },
      {
        id: "org/pickled-adapter",
        files: [
          { path: "adapter_config.json", content: "{}" },
          { path: "adapter_model.bin", content: "pickle" },
        ],
      },
      {
        id: "meta/gated",
        gated: true,
        allowedTokens: ["hf_granted"],
        files: [
          { path: "config.json", content: "{}" },
          { path: "model.safetensors", content: "weights" },
        ],
      },
      {
        id: "org/secret",
        private: true,
        allowedTokens: ["hf_granted"],
        files: [{ path: "config.json", content: "{}" }],
      },
      {
        id: "evil/escape",
        files: [
          { path: "config.json", content: "{}" },
          {
            path: "model.safetensors.index.json",
            content: JSON.stringify({ weight_map: { a: "../../../../outside.safetensors" } }),
          },
        ],
      },
    ],
  });
});

afterAll(() => fx.close());
beforeEach(() => fx.freshCache());

const opts = (extra: ResolveOptions = {}) => fx.options(extra);

/** Resolving again sends no request (the cached snapshot has everything); gives the second resolution. */
async function resolvesFromCache(id: string, kind: PretrainedKind): Promise<ResolvedPretrained> {
  fx.hub.requests.length = 0;
  const again = await resolvePretrained(id, kind, opts());
  expect(fx.hub.requests).toEqual([]);
  return again;
}

describe("resolvePretrained from the loopback Hub", () => {
  it("kind config fetches config.json only (no weights); a later model resolution completes the snapshot", async () => {
    const r = await resolvePretrained("org/tiny", "config", opts());
    expect((await readdir(r.path)).sort()).toEqual(["config.json"]);
    const downloads = () =>
      fx.hub.requests
        .filter((q) => q.url.includes("/resolve/") && q.range === undefined)
        .map((q) => q.url.split("/").pop());
    expect(downloads()).toEqual(["config.json"]);
    // Offline, the cached config is enough for another "config" resolution, not for a model.
    expect(await resolvePretrained("org/tiny", "config", opts({ offline: true }))).toEqual(r);
    const e = await rejection(resolvePretrained("org/tiny", "model", opts({ offline: true })));
    expect(e.message).toContain("model.safetensors is missing");
    fx.hub.requests.length = 0;
    const model = await resolvePretrained("org/tiny", "model", opts());
    expect(model.path).toBe(r.path);
    expect(downloads()).toEqual(["model.safetensors"]);
  });

  it("a test repository serves a revision at the commit its spec gives", async () => {
    const pinned = "17af9355ef89fba60de966eabaeba797c695f86e";
    fx.hub.addRepo({
      id: "org/pinned",
      files: [{ path: "config.json", content: "{}" }],
      commits: { main: pinned },
    });
    expect(fx.hub.commitOf("org/pinned")).toBe(pinned);
    const r = await resolvePretrained(`org/pinned@${pinned}`, "config", opts());
    expect(r.hub?.commit).toBe(pinned);
    expect(() => prepareRepo({ id: "org/bad", files: [], commits: { main: "abc" } })).toThrow(/40 hex/);
  });

  it("downloads only what a model loader reads, with progress in bytes, into Python's cache layout", async () => {
    const progress = recordingProgress();
    const r = await resolvePretrained("org/tiny", "model", opts({ progress: progress.reporter }));
    const commit = fx.hub.commitOf("org/tiny");
    const storage = join(fx.cacheDir, "models--org--tiny");
    expect(r).toEqual({
      path: join(storage, "snapshots", commit),
      hub: { repo: "org/tiny", type: "model", revision: "main", commit },
    });
    expect((await readdir(r.path)).sort()).toEqual(["config.json", "model.safetensors"]);
    // refs/main holds the commit without a newline; the blobs are named by sha256 (LFS) and git sha1 (small).
    expect(await readFile(join(storage, "refs", "main"), "utf8")).toBe(commit);
    const repo = prepareRepo({ id: "org/tiny", files: modelFiles });
    const weights = repo.revisions.get("main")?.files.get("model.safetensors");
    const config = repo.revisions.get("main")?.files.get("config.json");
    expect(await readlink(join(r.path, "model.safetensors"))).toBe(`../../blobs/${weights?.sha256}`);
    expect(await readlink(join(r.path, "config.json"))).toBe(`../../blobs/${config?.oid}`);
    expect(sha256(await read(join(r.path, "model.safetensors")))).toBe(
      sha256(await read(join(TINY, "model.safetensors"))),
    );
    // generation_config.json does not exist on the Hub: recorded under .no_exist as Python does.
    expect(existsSync(join(storage, ".no_exist", commit, "generation_config.json"))).toBe(true);
    // Nothing else was requested: no README, no pickle, no tokenizer file.
    const downloads = fx.hub.requests.filter((q) => q.url.includes("/resolve/") && q.range === undefined);
    expect(downloads.map((q) => q.url.split("/").pop()).sort()).toEqual(["config.json", "model.safetensors"]);
    // One progress task over the bytes of the two files, finished.
    const total = (config?.size ?? 0) + (weights?.size ?? 0);
    expect(progress.tasks).toEqual([
      expect.objectContaining({
        name: "download org/tiny",
        total,
        unit: "B",
        initial: 0,
        ticked: total,
        done: true,
      }),
    ]);
    // @huggingface/hub's own cache scanner reads the result as a cached revision with its ref.
    const scanned = await scanCachedRepo(storage);
    expect(
      scanned.revisions.map((v) => [v.commitOid, v.refs, v.files.map((f) => f.path.split("/").pop()).sort()]),
    ).toEqual([[commit, ["main"], ["config.json", "model.safetensors"]]]);
  });

  it("sends no request the second time", async () => {
    const first = await resolvePretrained("org/tiny", "model", opts());
    expect(fx.hub.requests.length).toBeGreaterThan(0);
    expect(await resolvesFromCache("org/tiny", "model")).toEqual(first);
  });

  it("fetches the tokenizer files of the same snapshot, and only those", async () => {
    const model = await resolvePretrained("org/tiny", "model", opts());
    const tok = await resolvePretrained("org/tiny", "tokenizer", opts());
    expect(tok.path).toBe(model.path);
    expect((await readdir(tok.path)).sort()).toEqual([
      "config.json",
      "model.safetensors",
      "special_tokens_map.json",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    await resolvesFromCache("org/tiny", "tokenizer");
  });

  it("fetches a sharded checkpoint's index and every shard it names", async () => {
    const r = await resolvePretrained("org/sharded", "model", opts());
    expect((await readdir(r.path)).sort()).toEqual([
      "config.json",
      "model-00001-of-00002.safetensors",
      "model-00002-of-00002.safetensors",
      "model.safetensors.index.json",
    ]);
    await resolvesFromCache("org/sharded", "model");
  });

  it("takes the revision from org/name@rev or the option, and records it with the commit", async () => {
    const pr = await resolvePretrained("org/pickled@refs/pr/1", "model", opts());
    expect(pr.hub).toEqual({
      repo: "org/pickled",
      type: "model",
      revision: "refs/pr/1",
      commit: fx.hub.commitOf("org/pickled", "refs/pr/1"),
    });
    // Python nests the ref file: refs/refs/pr/1.
    const storage = join(fx.cacheDir, "models--org--pickled");
    expect(await readFile(join(storage, "refs", "refs", "pr", "1"), "utf8")).toBe(pr.hub?.commit);
    const viaOption = await resolvePretrained("org/pickled", "model", opts({ revision: "refs/pr/1" }));
    expect(viaOption).toEqual(pr);
    const bySha = await resolvePretrained(`org/pickled@${pr.hub?.commit}`, "model", opts());
    expect(bySha.path).toBe(pr.path);
    const e = await rejection(
      resolvePretrained("org/pickled@main", "model", opts({ revision: "refs/pr/1" })),
    );
    expect(e.message).toMatch(/names revision main but the revision option is refs\/pr\/1/);
  });

  it("refuses a repository with only pickle weights and says to use a safetensors revision", async () => {
    const e = await rejection(resolvePretrained("org/pickled", "model", opts()));
    expect(e.code).toBe("UNSUPPORTED");
    expect(e.message).toMatch(/org\/pickled has its weights only as pickle files \(pytorch_model\.bin\)/);
    expect(e.message).toMatch(/refs\/pr\/N/);
    expect(e.message).toMatch(/safetensors/);
    // Nothing but metadata was requested: the pickle was never downloaded.
    expect(fx.hub.requests.some((q) => q.url.endsWith("pytorch_model.bin"))).toBe(false);
    const a = await rejection(resolvePretrained("org/pickled-adapter", "adapter", opts()));
    expect(a.code).toBe("UNSUPPORTED");
    expect(a.message).toMatch(
      /adapter weights only as pickle files \(adapter_model\.bin\).*adapter_model\.safetensors/,
    );
  });

  it("names the id when the repository does not exist (404 with a token, 401 without)", async () => {
    const withToken = await rejection(
      resolvePretrained("org/missing", "model", opts({ token: "hf_someone" })),
    );
    expect(withToken.code).toBe("NOT_FOUND");
    expect(withToken.message).toMatch(/^org\/missing was not found on the Hub/);
    const anonymous = await rejection(resolvePretrained("org/missing", "model", opts()));
    expect(anonymous.code).toBe("NOT_FOUND");
    expect(anonymous.message).toMatch(
      /^org\/missing was not found on the Hub, or it is private: .*HF_TOKEN.*huggingface-cli login/,
    );
  });

  it("names the id and revision when the revision does not exist", async () => {
    const e = await rejection(resolvePretrained("org/tiny@no-such-branch", "model", opts()));
    expect(e.code).toBe("NOT_FOUND");
    expect(e.message).toMatch(/org\/tiny has no revision "no-such-branch"/);
  });

  it("tells how to get access to a gated repository", async () => {
    const anonymous = await rejection(resolvePretrained("meta/gated", "model", opts()));
    expect(anonymous.code).toBe("HTTP");
    expect(anonymous.message).toMatch(
      new RegExp(
        `meta/gated is a gated repository and no token was sent: request access on ${fx.hub.url}/meta/gated, then set HF_TOKEN=hf_\\.\\.\\. or run \`huggingface-cli login\``,
      ),
    );
    const denied = await rejection(
      resolvePretrained("meta/gated", "model", opts({ token: "hf_not_granted" })),
    );
    expect(denied.message).toMatch(
      new RegExp(
        `meta/gated is a gated repository and your token has no access to it: request access on ${fx.hub.url}/meta/gated`,
      ),
    );
    expect(denied.message).toMatch(/HTTP 403/);
    const granted = await resolvePretrained("meta/gated", "model", opts({ token: "hf_granted" }));
    expect(await readFile(join(granted.path, "model.safetensors"), "utf8")).toBe("weights");
    expect(fx.hub.requests.some((q) => q.authorization === "Bearer hf_granted")).toBe(true);
  });

  it("hides a private repository from requests without its token", async () => {
    const e = await rejection(resolvePretrained("org/secret", "model", opts()));
    expect(e.message).toMatch(/org\/secret was not found on the Hub, or it is private/);
  });

  it("refuses a shard path that would leave the snapshot folder", async () => {
    const e = await rejection(resolvePretrained("evil/escape", "model", opts()));
    expect(e.code).toBe("UNSAFE_PATH");
    expect(existsSync(join(fx.cacheDir, "outside.safetensors"))).toBe(false);
  });

  it("leaves local paths and non-ids to the loader", async () => {
    const dir = join(fx.tmp, "local-model");
    await mkdir(dir, { recursive: true });
    expect(await resolvePretrained(dir, "model", opts())).toEqual({ path: dir, hub: null });
    expect(await resolvePretrained("./not/a/hub/id", "model", opts())).toEqual({
      path: "./not/a/hub/id",
      hub: null,
    });
    expect(await resolvePretrained("/abs/missing", "model", opts())).toEqual({
      path: "/abs/missing",
      hub: null,
    });
    expect(fx.hub.requests).toEqual([]);
  });
});

describe("a Python-layout cache", () => {
  it("is used with HF_HUB_OFFLINE and no request, found by refs/main", async () => {
    const cached = await writeCachedRepo(
      fx.cacheDir,
      { id: "org/tiny", files: modelFiles },
      { paths: ["config.json", "model.safetensors"] },
    );
    const r = await resolvePretrained("org/tiny", "model", opts({ offline: true }));
    expect(r.path).toBe(cached.snapshot());
    expect(r.hub?.commit).toBe(cached.commits.main);
    expect(fx.hub.requests).toEqual([]);
  });

  it("reads HF_HUB_OFFLINE and HF_HUB_CACHE from the environment", async () => {
    const cached = await writeCachedRepo(
      fx.cacheDir,
      { id: "org/tiny", files: modelFiles },
      { paths: ["config.json", "model.safetensors"] },
    );
    const restoreEnv = saveEnv(["HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_ENDPOINT"]);
    try {
      process.env.HF_HUB_OFFLINE = "1";
      process.env.HF_HUB_CACHE = fx.cacheDir;
      process.env.HF_ENDPOINT = fx.hub.url;
      const r = await resolvePretrained("org/tiny", "model", { progress: recordingProgress().reporter });
      expect(r.path).toBe(cached.snapshot());
      expect(fx.hub.requests).toEqual([]);
      const e = await rejection(resolvePretrained("org/uncached", "model"));
      expect(e.code).toBe("NOT_FOUND");
      expect(e.message).toMatch(
        /^org\/uncached is not in the Hub cache and HF_HUB_OFFLINE is set: refs\/main is missing \(revision main/,
      );
      expect(fx.hub.requests).toEqual([]);
    } finally {
      restoreEnv();
    }
  });

  it("offline, names the id, revision and the file the snapshot lacks", async () => {
    await writeCachedRepo(fx.cacheDir, { id: "org/tiny", files: modelFiles }, { paths: ["config.json"] });
    const e = await rejection(resolvePretrained("org/tiny", "model", opts({ offline: true })));
    expect(e.message).toMatch(
      /^org\/tiny is not in the Hub cache and HF_HUB_OFFLINE is set: model\.safetensors is missing \(revision main/,
    );
    const t = await rejection(resolvePretrained("org/tiny@v2", "tokenizer", opts({ offline: true })));
    expect(t.message).toMatch(/org\/tiny@v2 is not in the Hub cache .*refs\/v2 is missing \(revision v2/);
    expect(fx.hub.requests).toEqual([]);
  });

  it("online, completes a snapshot another tool filled partly, reusing its blobs", async () => {
    const cached = await writeCachedRepo(
      fx.cacheDir,
      { id: "org/tiny", files: [...modelFiles, ...tokenizerFiles] },
      { paths: ["tokenizer.json"] },
    );
    const r = await resolvePretrained("org/tiny", "tokenizer", opts());
    expect(r.path).toBe(cached.snapshot());
    const fetched = fx.hub.requests
      .filter((q) => q.url.includes("/resolve/") && q.range === undefined)
      .map((q) => q.url.split("/").pop());
    expect(fetched.sort()).toEqual(["special_tokens_map.json", "tokenizer_config.json"]);
    expect(
      existsSync(join(cached.storage, ".no_exist", cached.commits.main as string, "chat_template.jinja")),
    ).toBe(true);
  });

  it("with refresh, asks the Hub where the branch points now", async () => {
    await writeCachedRepo(
      fx.cacheDir,
      { id: "org/tiny", files: modelFiles },
      { paths: ["config.json", "model.safetensors"], noExist: ["generation_config.json"] },
    );
    await resolvePretrained("org/tiny", "model", opts({ refresh: true }));
    expect(fx.hub.requests.some((q) => q.url.startsWith("/api/models/org/tiny/revision/main"))).toBe(true);
  });
});

describe("downloads", () => {
  const storage = () => join(fx.cacheDir, "models--org--big");
  const blob = () => join(storage(), "blobs", BIG_SHA);

  it("resume from the partial file after the connection is cut, and end byte-identical", async () => {
    const fault = fx.hub.fault({ path: "model.safetensors", kind: "cut", afterBytes: 1_000_000 });
    const e = await rejection(resolvePretrained("org/big", "model", opts()));
    await fault.reached;
    expect(e.message).toMatch(
      /download of model\.safetensors was interrupted at \d+ of 2500000 bytes .*run again to resume it/,
    );
    const partial = (await stat(`${blob()}.incomplete`)).size;
    expect(partial).toBeGreaterThan(0);
    expect(existsSync(blob())).toBe(false);
    expect(existsSync(join(storage(), "refs", "main"))).toBe(false);
    fx.hub.requests.length = 0;
    const progress = recordingProgress();
    const r = await resolvePretrained("org/big", "model", opts({ progress: progress.reporter }));
    const ranged = fx.hub.requests.filter(
      (q) => q.host === "storage" && q.range !== undefined && q.range !== "bytes=0-0",
    );
    expect(ranged.map((q) => q.range)).toEqual([`bytes=${partial}-2499999`]);
    expect(sha256(await read(join(r.path, "model.safetensors")))).toBe(BIG_SHA);
    expect(existsSync(`${blob()}.incomplete`)).toBe(false);
    expect(progress.tasks[0]).toMatchObject({
      initial: partial,
      ticked: BIG.byteLength - partial,
      total: BIG.byteLength,
    });
  });

  it("resume the partial file a killed process left", async () => {
    const fault = fx.hub.fault({ path: "model.safetensors", kind: "stall", afterBytes: 1_200_000 });
    const child = spawn(
      process.execPath,
      ["--import", "tsx", join(here, "download-child.ts"), fx.hub.url, fx.cacheDir, "org/big"],
      {
        cwd: join(here, ".."),
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stderr = "";
    child.stderr.on("data", (d) => {
      stderr += String(d);
    });
    const exited = new Promise<number | null>((r) =>
      child.on("exit", (code, signal) => r(signal === null ? code : -1)),
    );
    await fault.reached;
    // Wait until the child has written every byte it was sent, then kill it without a chance to clean up.
    while (((await stat(`${blob()}.incomplete`).catch(() => undefined))?.size ?? 0) < 1_200_000) {
      if (child.exitCode !== null) throw new Error(`child exited early: ${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill("SIGKILL");
    expect(await exited).toBe(-1);
    fault.release();
    expect((await stat(`${blob()}.incomplete`)).size).toBe(1_200_000);
    fx.hub.requests.length = 0;
    const r = await resolvePretrained("org/big", "model", opts());
    expect(
      fx.hub.requests.filter((q) => q.host === "storage" && q.range === "bytes=1200000-2499999"),
    ).toHaveLength(1);
    expect(sha256(await read(join(r.path, "model.safetensors")))).toBe(BIG_SHA);
  });

  it("stop on an AbortSignal, keep the partial file and resume it", async () => {
    const controller = new AbortController();
    const fault = fx.hub.fault({ path: "model.safetensors", kind: "stall", afterBytes: 800_000 });
    const pending = resolvePretrained("org/big", "model", opts({ signal: controller.signal }));
    await fault.reached;
    while (((await stat(`${blob()}.incomplete`).catch(() => undefined))?.size ?? 0) < 800_000) {
      await new Promise((r) => setTimeout(r, 20));
    }
    controller.abort();
    const e = await rejection(pending);
    fault.release();
    expect(e.code).toBe("ABORTED");
    expect(e.message).toMatch(/run again to resume it/);
    expect((await stat(`${blob()}.incomplete`)).size).toBe(800_000);
    const r = await resolvePretrained("org/big", "model", opts());
    expect(sha256(await read(join(r.path, "model.safetensors")))).toBe(BIG_SHA);
  });

  it("detect a corrupted blob: nothing is moved into the cache", async () => {
    fx.hub.fault({ path: "model.safetensors", kind: "corrupt", afterBytes: 12345 });
    const e = await rejection(resolvePretrained("org/big", "model", opts()));
    expect(e.code).toBe("INVALID_FORMAT");
    expect(e.message).toMatch(/downloaded model\.safetensors does not match the Hub's sha256/);
    expect(e.expected).toBe(BIG_SHA);
    expect(existsSync(blob())).toBe(false);
    expect(existsSync(`${blob()}.incomplete`)).toBe(false);
    expect(existsSync(join(storage(), "snapshots", fx.hub.commitOf("org/big"), "model.safetensors"))).toBe(
      false,
    );
    const r = await resolvePretrained("org/big", "model", opts());
    expect(sha256(await read(join(r.path, "model.safetensors")))).toBe(BIG_SHA);
  });

  it("detect a corrupt partial file and download the whole file again", async () => {
    await mkdir(join(storage(), "blobs"), { recursive: true });
    const bad = BIG.slice(0, 700_000);
    bad[100] = (bad[100] as number) ^ 1;
    await writeFile(`${blob()}.incomplete`, bad);
    const r = await resolvePretrained("org/big", "model", opts());
    expect(sha256(await read(join(r.path, "model.safetensors")))).toBe(BIG_SHA);
    const bodies = fx.hub.requests
      .filter((q) => q.host === "storage" && q.range !== "bytes=0-0")
      .map((q) => q.range);
    expect(bodies).toEqual(["bytes=700000-2499999", undefined]);
  });

  it("start over when the server ignores the Range header", async () => {
    await mkdir(join(storage(), "blobs"), { recursive: true });
    await writeFile(`${blob()}.incomplete`, BIG.slice(0, 600_000));
    fx.hub.fault({ path: "model.safetensors", kind: "ignore-range" });
    const r = await resolvePretrained("org/big", "model", opts());
    expect(sha256(await read(join(r.path, "model.safetensors")))).toBe(BIG_SHA);
  });

  it("let two concurrent loads of one model share the download", async () => {
    const [a, b] = await Promise.all([
      resolvePretrained("org/big", "model", opts()),
      resolvePretrained("org/big", "model", opts()),
    ]);
    expect(a).toEqual(b);
    expect(sha256(await read(join(a.path, "model.safetensors")))).toBe(BIG_SHA);
    const link = await lstat(join(a.path, "model.safetensors"));
    expect(link.isSymbolicLink()).toBe(true);
    const lockDir = join(fx.cacheDir, ".locks", "models--org--big");
    expect((await readdir(lockDir)).filter((f) => f.endsWith(".hippo-lock"))).toEqual([]);
  });
});
