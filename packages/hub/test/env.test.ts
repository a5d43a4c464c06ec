/** The environment variables of Python's huggingface_hub, read the same way. */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { defaultCacheDir, defaultToken, hubSettings } from "../src/index.js";
import { saveEnv } from "../src/testing/index.js";

const VARS = [
  "HF_HOME",
  "HF_HUB_CACHE",
  "HUGGINGFACE_HUB_CACHE",
  "XDG_CACHE_HOME",
  "HF_TOKEN",
  "HUGGING_FACE_HUB_TOKEN",
  "HF_TOKEN_PATH",
  "HF_HUB_OFFLINE",
  "HF_ENDPOINT",
];
let restoreEnv: () => void;
let tmp: string;

beforeEach(async () => {
  restoreEnv = saveEnv(VARS);
  for (const v of VARS) delete process.env[v];
  tmp = await mkdtemp(join(tmpdir(), "hippo-hub-env-"));
});
afterEach(async () => {
  restoreEnv();
  await rm(tmp, { recursive: true, force: true });
});

describe("hub settings from the environment", () => {
  it("puts the cache in ~/.cache/huggingface/hub, $XDG_CACHE_HOME/huggingface/hub or $HF_HOME/hub", () => {
    expect(defaultCacheDir()).toBe(join(homedir(), ".cache", "huggingface", "hub"));
    process.env.XDG_CACHE_HOME = "/xdg";
    expect(defaultCacheDir()).toBe("/xdg/huggingface/hub");
    process.env.HF_HOME = "~/hf";
    expect(defaultCacheDir()).toBe(join(homedir(), "hf", "hub"));
  });

  it("lets HF_HUB_CACHE (then the legacy HUGGINGFACE_HUB_CACHE) win over HF_HOME", () => {
    process.env.HF_HOME = "/home-hf";
    process.env.HUGGINGFACE_HUB_CACHE = "/legacy";
    expect(defaultCacheDir()).toBe("/legacy");
    process.env.HF_HUB_CACHE = "/cache";
    expect(defaultCacheDir()).toBe("/cache");
  });

  it("reads the token from HF_TOKEN, else the file huggingface-cli login writes in HF_HOME", async () => {
    process.env.HF_HOME = tmp;
    expect(defaultToken()).toBeUndefined();
    await writeFile(join(tmp, "token"), "hf_fromfile\n");
    expect(defaultToken()).toBe("hf_fromfile");
    process.env.HF_TOKEN = "hf_fromenv";
    expect(defaultToken()).toBe("hf_fromenv");
    delete process.env.HF_TOKEN;
    await mkdir(join(tmp, "elsewhere"));
    await writeFile(join(tmp, "elsewhere", "tok"), "hf_frompath");
    process.env.HF_TOKEN_PATH = join(tmp, "elsewhere", "tok");
    expect(defaultToken()).toBe("hf_frompath");
  });

  it("takes HF_HUB_OFFLINE as Python does (1/ON/YES/TRUE in any case) and strips HF_ENDPOINT's slash", () => {
    for (const [value, offline] of [
      ["1", true],
      ["true", true],
      ["Yes", true],
      ["ON", true],
      ["0", false],
      ["false", false],
      ["", false],
    ] as const) {
      process.env.HF_HUB_OFFLINE = value;
      expect(hubSettings().offline).toBe(offline);
    }
    process.env.HF_ENDPOINT = "https://hf-mirror.example/";
    expect(hubSettings().endpoint).toBe("https://hf-mirror.example");
    expect(hubSettings({ endpoint: "http://127.0.0.1:1", offline: true, token: false })).toMatchObject({
      endpoint: "http://127.0.0.1:1",
      offline: true,
      token: undefined,
    });
  });
});
