/**
 * loadModel / loadAdapter / loadPeftModel by Hugging Face Hub id: from a cache laid out as Python's
 * huggingface_hub writes it (offline, no request) and from @hippocrates/hub's loopback Hub (first load
 * downloads with progress, the second sends nothing). The tiny-llama files are served byte for byte, so the
 * model loaded by id must equal the one loaded from the local folder exactly.
 */
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HippoError } from "@hippocrates/core";
import type { HubOptions } from "@hippocrates/hub";
import { type HubServer, recordingProgress, startHubServer, writeCachedRepo } from "@hippocrates/hub/testing";
import * as tf from "@tensorflow/tfjs-core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  ADAPTER_CONFIG,
  ADAPTER_WEIGHTS,
  addLoraAdapter,
  type CausalLM,
  loadAdapter,
  loadModel,
  loadPeftModel,
  saveAdapter,
} from "../src/index.js";
import { setup, TINY } from "./helpers.js";

let tmp: string;
let hub: HubServer;
let cacheDir: string;
let config: Uint8Array;
let weights: Uint8Array;

async function bytes(path: string): Promise<Uint8Array> {
  return new Uint8Array(await readFile(path));
}

/** Every weight of `a` equals `b`'s, bit for bit. */
function sameWeights(a: CausalLM, b: CausalLM): void {
  expect([...a.weights.keys()]).toEqual([...b.weights.keys()]);
  for (const [name, w] of a.weights) {
    const x = w.dataSync();
    const y = b.weights.get(name)?.dataSync() as Float32Array;
    expect(Buffer.from(x.buffer).equals(Buffer.from(y.buffer)), name).toBe(true);
  }
}

beforeAll(async () => {
  await setup();
  tmp = await mkdtemp(join(tmpdir(), "hippo-model-hub-"));
  config = await bytes(join(TINY, "config.json"));
  weights = await bytes(join(TINY, "model.safetensors"));
  // An adapter trained on the tiny model, saved as PEFT files, published under org/tiny-lora.
  const m = await loadModel(TINY);
  addLoraAdapter(
    m,
    { r: 4, alpha: 8, targetModules: ["q_proj", "v_proj"] },
    { seed: 5, baseModelNameOrPath: "org/tiny-llama" },
  );
  for (const [i, b] of [...(m.adapters.get("default")?.b.values() ?? [])].entries()) {
    tf.tidy(() => b.assign(tf.randomNormal(b.shape, 0, 0.05, "float32", i + 1)));
  }
  const adapterDir = join(tmp, "adapter");
  await saveAdapter(m, adapterDir);
  m.dispose();
  hub = await startHubServer({
    repos: [
      {
        id: "org/tiny-llama",
        files: [
          { path: "config.json", content: config },
          { path: "model.safetensors", content: weights },
        ],
        revisions: {
          "refs/pr/1": [
            { path: "config.json", content: config },
            { path: "model.safetensors", content: weights },
          ],
        },
      },
      {
        id: "org/tiny-lora",
        files: [
          { path: ADAPTER_CONFIG, content: await bytes(join(adapterDir, ADAPTER_CONFIG)) },
          { path: ADAPTER_WEIGHTS, content: await bytes(join(adapterDir, ADAPTER_WEIGHTS)) },
        ],
      },
      {
        id: "org/pickle-only",
        files: [
          { path: "config.json", content: config },
          { path: "pytorch_model.bin", content: "x" },
        ],
      },
    ],
  });
});

afterAll(async () => {
  await hub?.close();
  await rm(tmp, { recursive: true, force: true });
});

let n = 0;
beforeEach(async () => {
  cacheDir = join(tmp, `cache-${n++}`);
  await mkdir(cacheDir);
  hub.requests.length = 0;
});

const hubOptions = (extra: HubOptions = {}): HubOptions => ({
  endpoint: hub.url,
  cacheDir,
  token: false,
  offline: false,
  progress: recordingProgress().reporter,
  ...extra,
});

describe("loadModel by Hub id", () => {
  it("loads a model Python already downloaded, with HF_HUB_OFFLINE=1 and no request", async () => {
    await writeCachedRepo(cacheDir, {
      id: "org/tiny-llama",
      files: [
        { path: "config.json", content: config },
        { path: "model.safetensors", content: weights },
      ],
    });
    const saved = {
      HF_HUB_OFFLINE: process.env.HF_HUB_OFFLINE,
      HF_HUB_CACHE: process.env.HF_HUB_CACHE,
      HF_ENDPOINT: process.env.HF_ENDPOINT,
    };
    try {
      process.env.HF_HUB_OFFLINE = "1";
      process.env.HF_HUB_CACHE = cacheDir;
      process.env.HF_ENDPOINT = hub.url;
      const before = tf.memory().numTensors;
      const fromHub = await loadModel("org/tiny-llama");
      const local = await loadModel(TINY);
      sameWeights(fromHub, local);
      fromHub.dispose();
      local.dispose();
      expect(tf.memory().numTensors).toBe(before);
      const e = await loadModel("org/not-cached").catch((err: unknown) => err);
      expect(e).toBeInstanceOf(HippoError);
      expect((e as HippoError).message).toMatch(
        /^org\/not-cached is not in the Hub cache and HF_HUB_OFFLINE is set/,
      );
      expect(hub.requests).toEqual([]);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it("downloads on the first load with progress and sends no request on the second", async () => {
    const progress = recordingProgress();
    const first = await loadModel("org/tiny-llama", { hub: hubOptions({ progress: progress.reporter }) });
    expect(progress.tasks).toEqual([
      expect.objectContaining({
        name: "download org/tiny-llama",
        unit: "B",
        total: config.byteLength + weights.byteLength,
        done: true,
      }),
    ]);
    hub.requests.length = 0;
    const second = await loadModel("org/tiny-llama", { hub: hubOptions() });
    expect(hub.requests).toEqual([]);
    sameWeights(first, second);
    first.dispose();
    second.dispose();
  });

  it("takes a revision as an option or in the id", async () => {
    const m = await loadModel("org/tiny-llama", { revision: "refs/pr/1", hub: hubOptions() });
    m.dispose();
    expect(
      hub.requests.some((q) => q.url.startsWith("/api/models/org/tiny-llama/revision/refs%2Fpr%2F1")),
    ).toBe(true);
    hub.requests.length = 0;
    (await loadModel("org/tiny-llama@refs/pr/1", { hub: hubOptions() })).dispose();
    expect(hub.requests).toEqual([]);
  });

  it("refuses a pickle-only repository", async () => {
    const e = await loadModel("org/pickle-only", { hub: hubOptions() }).catch((err: unknown) => err);
    expect((e as HippoError).code).toBe("UNSUPPORTED");
    expect((e as HippoError).message).toMatch(/only as pickle files \(pytorch_model\.bin\).*refs\/pr\/N/);
  });

  it("still reports a missing local folder as before", async () => {
    await expect(loadModel(join(tmp, "no-such-model"))).rejects.toThrow(/config\.json/);
  });
});

describe("adapters by Hub id", () => {
  it("loadAdapter fetches a PEFT adapter by id onto a model", async () => {
    const local = await loadModel(TINY);
    await loadAdapter(local, join(tmp, "adapter"));
    const m = await loadModel(TINY);
    const adapter = await loadAdapter(m, "org/tiny-lora", { hub: hubOptions() });
    expect(adapter.baseModelNameOrPath).toBe("org/tiny-llama");
    for (const [w, b] of local.adapters.get("default")?.b ?? []) {
      expect(adapter.b.get(w)?.dataSync()).toEqual(b.dataSync());
    }
    m.dispose();
    local.dispose();
  });

  it("loadPeftModel loads the base model the adapter names by Hub id, then the adapter", async () => {
    const m = await loadPeftModel("org/tiny-lora", { hub: hubOptions() });
    expect(m.activeAdapters).toEqual(["default"]);
    const fetched = hub.requests
      .filter((q) => q.url.includes("/resolve/") && q.range === undefined)
      .map((q) => q.url);
    expect(fetched.some((u) => u.startsWith("/org/tiny-llama/resolve/"))).toBe(true);
    expect(fetched.some((u) => u.startsWith("/org/tiny-lora/resolve/"))).toBe(true);
    const local = await loadModel(TINY);
    sameWeights(m, local);
    m.dispose();
    local.dispose();
  });
});
