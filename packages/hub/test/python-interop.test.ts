/**
 * Against Python's huggingface_hub itself, when a Python with it is at hand (`HIPPO_HF_PYTHON`, default
 * `python3`; skipped otherwise): Python downloads from the loopback Hub and we use its cache offline with no
 * request; we download and Python reads our cache offline (`.no_exist` marker included) and scans it without
 * warnings; Python sees our gated repository as gated. Run here with huggingface_hub 1.33.0.
 */
import { execFile, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fetchDatasetFiles, resolvePretrained } from "../src/index.js";
import { type HubServer, medmcqaRepo, recordingProgress, startHubServer } from "../src/testing/index.js";

const PYTHON = process.env.HIPPO_HF_PYTHON ?? "python3";
const hasHub = spawnSync(PYTHON, ["-c", "import huggingface_hub"], { stdio: "ignore" }).status === 0;
const here = dirname(fileURLToPath(import.meta.url));
const SHARED = join(here, "../../../../shared/data");
const TINY = join(SHARED, "models/tiny-llama-hf");
const run = promisify(execFile);

let hub: HubServer;
let tmp: string;

async function python(code: string, env: Record<string, string>): Promise<string> {
  // Asynchronous: the loopback Hub runs in this process and must answer while Python waits.
  const { stdout } = await run(PYTHON, ["-c", code], {
    env: { ...process.env, HF_HUB_DISABLE_TELEMETRY: "1", HF_TOKEN: "", ...env },
    encoding: "utf8",
  });
  return stdout.trim();
}

describe.skipIf(!hasHub)("with Python's huggingface_hub", () => {
  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), "hippo-hub-python-"));
    hub = await startHubServer({
      repos: [
        {
          id: "org/tiny",
          files: [
            { path: "config.json", content: new Uint8Array(await readFile(join(TINY, "config.json"))) },
            {
              path: "model.safetensors",
              content: new Uint8Array(await readFile(join(TINY, "model.safetensors"))),
            },
          ],
        },
        { id: "meta/gated", gated: true, files: [{ path: "config.json", content: "{}" }] },
        await medmcqaRepo(SHARED),
      ],
    });
  });
  afterAll(async () => {
    await hub?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it("we load what Python downloaded, offline and without a request", async () => {
    const cacheDir = join(tmp, "python-wrote");
    const out = await python(
      'from huggingface_hub import hf_hub_download\nprint(hf_hub_download("org/tiny", "model.safetensors"))\nhf_hub_download("org/tiny", "config.json")\nprint(hf_hub_download("openlifescienceai/medmcqa", "data/validation-00000-of-00001.parquet", repo_type="dataset"))\nhf_hub_download("openlifescienceai/medmcqa", "README.md", repo_type="dataset")',
      { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cacheDir },
    );
    const commit = hub.commitOf("org/tiny");
    expect(out.split("\n")[0]).toBe(
      join(cacheDir, "models--org--tiny", "snapshots", commit, "model.safetensors"),
    );
    hub.requests.length = 0;
    const r = await resolvePretrained("org/tiny", "model", { cacheDir, offline: true, endpoint: hub.url });
    expect(r.hub?.commit).toBe(commit);
    const d = await fetchDatasetFiles("openlifescienceai/medmcqa", {
      split: "validation",
      cacheDir,
      offline: true,
      endpoint: hub.url,
    });
    expect(d.files[0]?.localPath).toBe(out.split("\n")[1]);
    expect(hub.requests).toEqual([]);
  });

  it("Python loads what we downloaded, offline, and scans the cache without warnings", async () => {
    const cacheDir = join(tmp, "we-wrote");
    const r = await resolvePretrained("org/tiny", "model", {
      cacheDir,
      endpoint: hub.url,
      token: false,
      offline: false,
      progress: recordingProgress().reporter,
    });
    const out = await python(
      [
        "from huggingface_hub import hf_hub_download, scan_cache_dir, try_to_load_from_cache",
        "from huggingface_hub.file_download import _CACHED_NO_EXIST",
        'print(hf_hub_download("org/tiny", "model.safetensors", local_files_only=True))',
        'print(try_to_load_from_cache("org/tiny", "generation_config.json") is _CACHED_NO_EXIST)',
        "info = scan_cache_dir()",
        "print([(x.commit_hash, sorted(x.refs), sorted(f.file_name for f in x.files)) for repo in info.repos for x in repo.revisions], len(info.warnings))",
      ].join("\n"),
      { HF_HUB_CACHE: cacheDir, HF_HUB_OFFLINE: "1" },
    );
    expect(out.split("\n")).toEqual([
      join(r.path, "model.safetensors"),
      "True",
      `[('${r.hub?.commit}', ['main'], ['config.json', 'model.safetensors'])] 0`,
    ]);
  });

  it("Python sees the loopback Hub's gated repository as gated", async () => {
    const err = await python(
      'from huggingface_hub import hf_hub_download\nhf_hub_download("meta/gated", "config.json")',
      {
        HF_ENDPOINT: hub.url,
        HF_HUB_CACHE: join(tmp, "gated"),
      },
    ).catch((e: { stderr?: string }) => e.stderr ?? "");
    expect(err).toMatch(/GatedRepoError/);
  });
});
