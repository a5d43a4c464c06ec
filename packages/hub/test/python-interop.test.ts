/**
 * Against Python's huggingface_hub itself, when a Python with it is at hand (`HIPPO_HF_PYTHON`, default
 * `python3`; skipped otherwise): Python downloads from the loopback Hub and we use its cache offline with no
 * request; we download and Python reads our cache offline (`.no_exist` marker included) and scans it without
 * warnings; Python sees our gated repository as gated. Run here with huggingface_hub 1.33.0.
 */
import { execFile, spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fetchDatasetFiles, resolvePretrained } from "../src/index.js";
import {
  benchmarkRepos,
  hubFixture,
  medmcqaRepo,
  recordingProgress,
  startHubServer,
} from "../src/testing/index.js";
import { LAYOUT_REPOS, SHARED } from "./helpers.js";

const PYTHON = process.env.HIPPO_HF_PYTHON ?? "python3";
const has = (module: string) =>
  spawnSync(PYTHON, ["-c", `import ${module}`], { stdio: "ignore" }).status === 0;
const hasHub = has("huggingface_hub");
const hasDatasets = has("datasets");
const TINY = join(SHARED, "models/tiny-llama-hf");
const run = promisify(execFile);

const fx = hubFixture("hippo-hub-python-");

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
    await fx.start({
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
  afterAll(() => fx.close());

  it("we load what Python downloaded, offline and without a request", async () => {
    const cacheDir = join(fx.tmp, "python-wrote");
    const out = await python(
      'from huggingface_hub import hf_hub_download\nprint(hf_hub_download("org/tiny", "model.safetensors"))\nhf_hub_download("org/tiny", "config.json")\nprint(hf_hub_download("openlifescienceai/medmcqa", "data/validation-00000-of-00001.parquet", repo_type="dataset"))\nhf_hub_download("openlifescienceai/medmcqa", "README.md", repo_type="dataset")',
      { HF_ENDPOINT: fx.hub.url, HF_HUB_CACHE: cacheDir },
    );
    const commit = fx.hub.commitOf("org/tiny");
    expect(out.split("\n")[0]).toBe(
      join(cacheDir, "models--org--tiny", "snapshots", commit, "model.safetensors"),
    );
    fx.hub.requests.length = 0;
    const r = await resolvePretrained("org/tiny", "model", { cacheDir, offline: true, endpoint: fx.hub.url });
    expect(r.hub?.commit).toBe(commit);
    const d = await fetchDatasetFiles("openlifescienceai/medmcqa", {
      split: "validation",
      cacheDir,
      offline: true,
      endpoint: fx.hub.url,
    });
    expect(d.files[0]?.localPath).toBe(out.split("\n")[1]);
    expect(fx.hub.requests).toEqual([]);
  });

  it("Python loads what we downloaded, offline, and scans the cache without warnings", async () => {
    const cacheDir = join(fx.tmp, "we-wrote");
    const r = await resolvePretrained("org/tiny", "model", {
      cacheDir,
      endpoint: fx.hub.url,
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
        HF_ENDPOINT: fx.hub.url,
        HF_HUB_CACHE: join(fx.tmp, "gated"),
      },
    ).catch((e: { stderr?: string }) => e.stderr ?? "");
    expect(err).toMatch(/GatedRepoError/);
  });
});

describe.skipIf(!hasDatasets)("with Python's datasets library", () => {
  it("load_dataset_builder picks the same files as fetchDatasetFiles for every config and split", async () => {
    const dir = await mkdtemp(join(tmpdir(), "hippo-hub-datasets-lib-"));
    const repos = [
      ...(await benchmarkRepos(SHARED)).filter((r) => r.id !== "bigbio/pubmed_qa" && r.id !== "cais/mmlu"),
      ...LAYOUT_REPOS,
    ];
    const server = await startHubServer({ repos });
    try {
      const cases: [string, string | null][] = [];
      for (const r of repos) {
        const local = join(dir, r.id.replace("/", "__"));
        for (const f of r.files ?? []) {
          await mkdir(dirname(join(local, f.path)), { recursive: true });
          await writeFile(join(local, f.path), f.content);
        }
        const configs =
          r.id === "hails/mmlu_no_train"
            ? ["anatomy"]
            : r.id === "qiaojin/PubMedQA"
              ? ["pqa_labeled"]
              : r.id === "org/two-configs"
                ? ["small", "big", null]
                : [null];
        for (const c of configs) cases.push([r.id, c]);
      }
      // The library resolves a local folder laid out as the repository with the same rules as the Hub one.
      const out = await python(
        [
          "import sys, json, os, datasets",
          "out = []",
          `for rid, cfg in json.loads(${JSON.stringify(JSON.stringify(cases))}):`,
          `    d = os.path.join(${JSON.stringify(dir)}, rid.replace("/", "__"))`,
          "    b = datasets.load_dataset_builder(d, cfg)",
          "    for split, files in b.config.data_files.items():",
          "        out.append([rid, cfg, str(split), [os.path.relpath(p, d) for p in files]])",
          "print(json.dumps(out))",
        ].join("\n"),
        { HF_HUB_OFFLINE: "1", HF_DATASETS_OFFLINE: "1" },
      );
      const theirs = JSON.parse(out) as [string, string | null, string, string[]][];
      expect(theirs.length).toBeGreaterThanOrEqual(cases.length);
      for (const [id, config, split, files] of theirs) {
        const ours = await fetchDatasetFiles(id, {
          split,
          config: config ?? undefined,
          endpoint: server.url,
          cacheDir: join(dir, "cache"),
          token: false,
          offline: false,
          progress: recordingProgress().reporter,
        });
        expect([id, config, split, ours.files.map((f) => f.path)]).toEqual([id, config, split, files]);
      }
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
