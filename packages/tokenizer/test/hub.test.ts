/**
 * loadTokenizer by Hugging Face Hub id, through @hippocrates/hub's loopback Hub and a Python-layout cache:
 * the Llama-2 tokenizer files served byte for byte give the same tokenizer as the local folder.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type HubServer, recordingProgress, startHubServer, writeCachedRepo } from "@hippocrates/hub/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadTokenizer } from "../src/index.js";
import { LLAMA2 } from "./helpers.js";

const FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model"];
const TEXT = "A 23-year-old pregnant woman at 22 weeks gestation presents with burning upon urination.";
let tmp: string;
let hub: HubServer;
let files: { path: string; content: Uint8Array }[];

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "hippo-tokenizer-hub-"));
  files = await Promise.all(
    FILES.map(async (path) => ({ path, content: new Uint8Array(await readFile(join(LLAMA2, path))) })),
  );
  hub = await startHubServer({ repos: [{ id: "meta-llama/Llama-2-7b-hf", files }] });
});
afterAll(async () => {
  await hub.close();
  await rm(tmp, { recursive: true, force: true });
});

describe("loadTokenizer by Hub id", () => {
  it("downloads the tokenizer files once, then loads them with no request, as the local folder does", async () => {
    const cacheDir = join(tmp, "online");
    const hubOptions = {
      endpoint: hub.url,
      cacheDir,
      token: false as const,
      offline: false,
      progress: recordingProgress().reporter,
    };
    const local = await loadTokenizer(LLAMA2);
    const fromHub = await loadTokenizer("meta-llama/Llama-2-7b-hf", { hub: hubOptions });
    const downloaded = hub.requests
      .filter((q) => q.url.includes("/resolve/") && q.range === undefined)
      .map((q) => q.url.split("/").pop());
    // tokenizer.model (SentencePiece) is not read by the fast tokenizer: not fetched.
    expect(downloaded.sort()).toEqual(["special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]);
    expect(await fromHub.encode(TEXT)).toEqual(await local.encode(TEXT));
    expect([fromHub.bosTokenId, fromHub.eosTokenId, fromHub.addBosToken]).toEqual([
      local.bosTokenId,
      local.eosTokenId,
      local.addBosToken,
    ]);
    hub.requests.length = 0;
    const again = await loadTokenizer("meta-llama/Llama-2-7b-hf", { hub: hubOptions });
    expect(hub.requests).toEqual([]);
    expect(again.dir).toBe(fromHub.dir);
  });

  it("loads from a Python-layout cache offline", async () => {
    const cacheDir = join(tmp, "python");
    const cached = await writeCachedRepo(cacheDir, { id: "meta-llama/Llama-2-7b-hf", files });
    hub.requests.length = 0;
    const t = await loadTokenizer("meta-llama/Llama-2-7b-hf", {
      hub: { cacheDir, endpoint: hub.url, offline: true },
    });
    expect(t.dir).toBe(cached.snapshot());
    expect(await t.encode(TEXT)).toEqual(await (await loadTokenizer(LLAMA2)).encode(TEXT));
    expect(hub.requests).toEqual([]);
  });
});
