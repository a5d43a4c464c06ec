/**
 * Models, tokenizers, adapters and benchmark datasets by their Hugging Face Hub ids, through the commands as a
 * user runs them (the bin in a child process, `HF_ENDPOINT` at a loopback Hub and a temporary `HF_HOME`):
 *
 * - with a cache laid out as Python's `huggingface_hub` writes it and `HF_HUB_OFFLINE=1`, `hippo eval`,
 *   `hippo generate`, `hippo serve`, `hippo init --tokenizer`, `hippo train`, `hippo merge` and `loadModel` use
 *   `org/name` with no request to the Hub, and an id that is not cached fails naming the id, revision and file;
 * - against the loopback Hub, the first run downloads with a progress bar and the second sends no request;
 * - `hippo eval --tasks medqa_usmle,medmcqa,pubmedqa` without `--data-dir` fetches the datasets and builds the
 *   same prompts, for the same documents, as from `../shared/data` (v0.3 and current profiles), and the results
 *   record each dataset's revision and commit;
 * - `hippo run` with `model: org/name` records the resolved commits in the manifest, and the report lists them.
 */
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { initBackend } from "@hippocrates/backend";
import { type HubServer, type RepoSpec, startHubServer, writeCachedRepo } from "@hippocrates/hub/testing";
import { loadModel } from "@hippocrates/model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pinnedBenchmarkRepos } from "../../eval/test/hubData.js";
import {
  DATA,
  initArgs,
  removeTempDir,
  runHippo,
  runHippoOk,
  startHippo,
  tinyLlamaFolder,
} from "./helpers/cli.js";

const EPOCH = "1714566896";
const ID = "org/tiny-llama";

let dir: string;
let hub: HubServer;
let model: RepoSpec;
let benchmarks: RepoSpec[];
/** HF_HOME of a cache written as Python writes it (the model and augtoma/medqa_usmle). */
let pyHome: string;
let commit: string;

beforeAll(async () => {
  dir = await tinyLlamaFolder("cli-hub");
  const init = await hippo(initArgs("made"));
  expect(init.stderr).toBe("");
  // The model folder as a Hub repository: config, safetensors (LFS) and the tokenizer files.
  model = {
    id: ID,
    files: await Promise.all(
      (await readdir(join(dir, "made"))).sort().map(async (path) => ({
        path,
        content: new Uint8Array(await readFile(join(dir, "made", path))),
      })),
    ),
  };
  benchmarks = await pinnedBenchmarkRepos(DATA);
  hub = await startHubServer({ repos: [model, ...benchmarks] });
  commit = hub.commitOf(ID);
  pyHome = join(dir, "python-hf-home");
  await writeCachedRepo(join(pyHome, "hub"), model);
  const medqa = benchmarks.find((r) => r.id === "augtoma/medqa_usmle") as RepoSpec;
  await writeCachedRepo(join(pyHome, "hub"), medqa);
});
afterAll(async () => {
  await hub?.close();
  await removeTempDir(dir);
});

/** The Hub environment of a child: the loopback Hub, this HF_HOME, no token, nothing from the outer shell. */
function hubEnv(home: string, offline = false): Record<string, string> {
  return {
    HF_HOME: home,
    HF_ENDPOINT: hub.url,
    HF_HUB_OFFLINE: offline ? "1" : "",
    HF_HUB_CACHE: "",
    HUGGINGFACE_HUB_CACHE: "",
    HF_TOKEN: "",
    HUGGING_FACE_HUB_TOKEN: "",
    HF_TOKEN_PATH: join(home, "no-token"),
    SOURCE_DATE_EPOCH: EPOCH,
  };
}

const start = (args: string[], env: Record<string, string>) => startHippo(dir, args, env);
const hippo = (args: string[], env: Record<string, string> = { SOURCE_DATE_EPOCH: EPOCH }) =>
  runHippo(dir, args, env);
const ok = (args: string[], env: Record<string, string>) => runHippoOk(dir, args, env);

/** The results file and samples rows of an output folder. */
async function output(rel: string) {
  const folder = join(dir, rel);
  const sub = (await readdir(folder)).find((n) => !n.startsWith(".")) as string;
  const files = await readdir(join(folder, sub));
  const results = JSON.parse(
    await readFile(join(folder, sub, files.find((f) => f.startsWith("results_")) as string), "utf8"),
  );
  const samples: Record<string, Record<string, unknown>[]> = {};
  for (const f of files.filter((n) => n.startsWith("samples_"))) {
    const task = f.replace(/^samples_/, "").replace(/_\d{4}-.*$/, "");
    samples[task] = (await readFile(join(folder, sub, f), "utf8"))
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  }
  return { results, samples };
}

const promptsOf = (rows: Record<string, unknown>[]) =>
  rows.map((r) => [r.doc_id, r.arguments, r.target, r.prompt_hash]);

describe("offline, from a cache laid out as Python's huggingface_hub writes it", () => {
  it("hippo eval --model hf --model_args pretrained=org/name runs with no request; results record the commits", async () => {
    hub.requests.length = 0;
    await ok(
      [
        ...["eval", "--model", "hf", "--model_args", `pretrained=${ID}`, "--tasks", "medqa_usmle"],
        ...["--limit", "2", "--output_path", "offline-eval", "--log_samples", "--no-progress"],
      ],
      hubEnv(pyHome, true),
    );
    expect(hub.requests).toEqual([]);
    const { results } = await output("offline-eval");
    expect(results.model_name).toBe(ID);
    expect(results.config).toMatchObject({
      model: "hf",
      model_revision: "main",
      model_sha: commit,
      model_sources: {
        model: { repo: ID, revision: "main", commit },
        peft: null,
        tokenizer: { repo: ID, revision: "main", commit },
      },
    });
    expect(results.configs.medqa_usmle.metadata.datasets.test).toMatchObject({
      repo: "augtoma/medqa_usmle",
      revision: "main",
      commit: hub.commitOf("augtoma/medqa_usmle", "main", "dataset"),
    });
  });

  it("hippo generate org/name, hippo init --tokenizer org/name and hippo serve org/name send no request", async () => {
    hub.requests.length = 0;
    const gen = await ok(
      ["generate", ID, "-p", "Question: fever?\nAnswer:", "--max-tokens", "2"],
      hubEnv(pyHome, true),
    );
    expect(gen.stdout.length).toBeGreaterThan(0);
    await ok(
      ["init", "--config", "tiny.json", "--output", "init-from-hub", "--tokenizer", ID],
      hubEnv(pyHome, true),
    );
    expect(existsSync(join(dir, "init-from-hub", "tokenizer.json"))).toBe(true);
    const child = start(["serve", ID, "--port", "0", "--quiet"], hubEnv(pyHome, true));
    const line = await new Promise<string>((resolve, reject) => {
      let err = "";
      child.stderr?.on("data", (d: Buffer) => {
        err += d;
        if (err.includes("serving")) resolve(err);
      });
      child.on("exit", () => reject(new Error(err)));
    });
    child.kill("SIGTERM");
    expect(line).toContain(`serving ${ID} (${ID}@${commit})`);
    expect(hub.requests).toEqual([]);
  });

  it("loadModel('org/name') loads from the cache with no request", async () => {
    await initBackend({ backend: "cpu" });
    hub.requests.length = 0;
    const lm = await loadModel(ID, {
      hub: { cacheDir: join(pyHome, "hub"), endpoint: hub.url, offline: true },
    });
    try {
      expect(lm.config.vocab_size).toBe(32000);
    } finally {
      lm.dispose();
    }
    expect(hub.requests).toEqual([]);
  });

  it("an id that is not cached fails naming the id, the revision and the file", async () => {
    hub.requests.length = 0;
    const evalRun = await hippo(
      [
        ...["eval", "--model", "hf", "--model_args", "pretrained=org/not-cached,revision=v2"],
        ...["--tasks", "medqa_usmle", "--data-dir", DATA, "--no-progress"],
      ],
      hubEnv(pyHome, true),
    );
    expect(evalRun.status).not.toBe(0);
    expect(evalRun.stderr).toContain(
      "org/not-cached@v2 is not in the Hub cache and HF_HUB_OFFLINE is set: refs/v2 is missing (revision v2",
    );
    const gen = await hippo(["generate", "org/not-cached", "-p", "x"], hubEnv(pyHome, true));
    expect(gen.status).not.toBe(0);
    expect(gen.stderr).toMatch(/org\/not-cached is not in the Hub cache.*refs\/main is missing/);
    expect(gen.stderr).not.toMatch(/\n\s+at /);
    expect(hub.requests).toEqual([]);
  });
});

describe("online, against the loopback Hub", () => {
  it("the first hippo generate downloads with a progress bar; the second sends no request", async () => {
    const home = join(dir, "hf-online");
    hub.requests.length = 0;
    const first = await ok(["generate", ID, "-p", "Question:", "--max-tokens", "1"], hubEnv(home));
    expect(hub.requests.length).toBeGreaterThan(0);
    // The bar on stderr (a line per update off a TTY): bytes, rate, and the final line's time.
    expect(first.stderr).toMatch(
      /download org\/tiny-llama +\[#+\] (\d+)\/\1 B +\S+ B\/s +in \S+ +file=model\.safetensors/,
    );
    hub.requests.length = 0;
    await ok(["generate", ID, "-p", "Question:", "--max-tokens", "1"], hubEnv(home));
    expect(hub.requests).toEqual([]);
  });

  it("v0.3: hippo eval --tasks medqa_usmle,medmcqa,pubmedqa without --data-dir builds the prompts of ../shared/data and records each dataset's revision", async () => {
    const home = join(dir, "hf-eval-v03");
    const common = [
      ...[
        "eval",
        "--model",
        "hf",
        "--model_args",
        `pretrained=${ID}`,
        "--tasks",
        "medqa_usmle,medmcqa,pubmedqa",
      ],
      ...["--limit", "3", "--log_samples", "--no-progress"],
    ];
    await ok([...common, "--output_path", "v03-hub"], hubEnv(home));
    await ok([...common, "--output_path", "v03-files", "--data-dir", DATA], hubEnv(home));
    const fromHub = await output("v03-hub");
    const fromFiles = await output("v03-files");
    for (const task of ["medqa_usmle", "medmcqa", "pubmedqa"]) {
      expect(promptsOf(fromHub.samples[task] ?? [])).toHaveLength(3);
      expect(promptsOf(fromHub.samples[task] ?? [])).toEqual(promptsOf(fromFiles.samples[task] ?? []));
      expect(fromFiles.results.configs[task].metadata.datasets).toEqual({});
    }
    const datasets = (task: string) => fromHub.results.configs[task].metadata.datasets.test;
    expect(datasets("medqa_usmle")).toMatchObject({ repo: "augtoma/medqa_usmle", revision: "main" });
    expect(datasets("medmcqa")).toMatchObject({
      repo: "augtoma/medmcqa",
      revision: "main",
      commit: hub.commitOf("augtoma/medmcqa", "main", "dataset"),
    });
    expect(datasets("pubmedqa")).toEqual({
      repo: "pubmed_qa",
      config: "pqa_labeled",
      split: "train",
      revision: "9001f2853fb87cab8d220904e0de81ac6973b318",
      commit: "9001f2853fb87cab8d220904e0de81ac6973b318",
      files: ["pqa_labeled/train-00000-of-00001.parquet"],
    });
  });

  it("current profile: medqa_4options, medmcqa, pubmedqa and mmlu_anatomy from today's harness datasets, same prompts", async () => {
    const home = join(dir, "hf-eval-current");
    const tasks = ["medqa_4options", "medmcqa", "pubmedqa", "mmlu_anatomy"];
    const common = [
      ...["eval", "--model", "hf", "--model_args", `pretrained=${ID}`, "--tasks", tasks.join(",")],
      ...["--profile", "current", "--limit", "3", "--log_samples", "--no-progress"],
    ];
    await ok([...common, "--output_path", "cur-hub"], hubEnv(home));
    await ok([...common, "--output_path", "cur-files", "--data-dir", DATA], hubEnv(home));
    const fromHub = await output("cur-hub");
    const fromFiles = await output("cur-files");
    for (const task of tasks)
      expect(promptsOf(fromHub.samples[task] ?? [])).toEqual(promptsOf(fromFiles.samples[task] ?? []));
    expect(
      tasks.map((t) => {
        const d = fromHub.results.configs[t].metadata.datasets.test;
        return `${d.repo} ${d.config} ${d.split} ${d.revision}`;
      }),
    ).toEqual([
      "GBaker/MedQA-USMLE-4-options-hf default test 17af9355ef89fba60de966eabaeba797c695f86e",
      "openlifescienceai/medmcqa default validation 91c6572c454088bf71b679ad90aa8dffcd0d5868",
      "bigbio/pubmed_qa pubmed_qa_labeled_fold0_source test refs/convert/parquet",
      "hails/mmlu_no_train anatomy test b2e1ec9aa795adafe68e8e983248dbd4b52a1c60",
    ]);
  });
});

describe("pipelines and training with Hub ids", () => {
  it("hippo run with model: org/name records the commits in the manifest, and the report lists them", async () => {
    const run = join(dir, "pipeline");
    await mkdir(run, { recursive: true });
    await writeFile(
      join(run, "pipeline.yaml"),
      [
        "name: hub-run",
        `model: ${ID}`,
        "revision: main",
        "output_dir: ./run",
        "stages:",
        "  - kind: eval",
        "    tasks: [medqa_usmle]",
        "    limit: 2",
        "",
      ].join("\n"),
    );
    const plan = await ok(["run", join(run, "pipeline.yaml"), "--dry-run"], hubEnv(pyHome, true));
    expect(plan.stdout).toContain(`base = ${ID}, revision main, commit ${commit} (cached)`);
    hub.requests.length = 0;
    await ok(["run", join(run, "pipeline.yaml"), "--no-progress"], hubEnv(pyHome, true));
    expect(hub.requests).toEqual([]);
    const manifest = JSON.parse(await readFile(join(run, "run", "manifest.json"), "utf8"));
    expect(manifest.sources).toEqual([
      { role: "model base", type: "model", repo: ID, revision: "main", commit },
      { role: "tokenizer base", type: "model", repo: ID, revision: "main", commit },
    ]);
    expect(manifest.stages[0].input).toEqual({ kind: "hf-model", path: ID, revision: commit });
    expect(manifest.stages[0].output.sources).toEqual([
      {
        role: "dataset medqa_usmle/test",
        type: "dataset",
        repo: "augtoma/medqa_usmle",
        revision: "main",
        commit: hub.commitOf("augtoma/medqa_usmle", "main", "dataset"),
        config: "default",
        split: "test",
      },
    ]);
    // A second run reuses the stage (same commit) with no request.
    const again = await ok(["run", join(run, "pipeline.yaml"), "--no-progress"], hubEnv(pyHome, true));
    expect(again.stdout).toContain("skipped eval");
    await ok(["report", join(run, "run")], hubEnv(pyHome, true));
    const html = await readFile(join(run, "run", "report.html"), "utf8");
    expect(html).toContain(`model ${ID} @ main = ${commit}`);
    expect(html).toContain(
      `dataset augtoma/medqa_usmle @ main = ${hub.commitOf("augtoma/medqa_usmle", "main", "dataset")}`,
    );
  });

  it("hippo train sft --model org/name records the commit; the adapter names the Hub id; hippo merge takes both ids", async () => {
    await writeFile(
      join(dir, "sft.jsonl"),
      `${[1, 2, 3, 4].map((i) => JSON.stringify({ prompt: `Question ${i}?`, completion: ` Answer ${i}.` })).join("\n")}\n`,
    );
    const train = await ok(
      [
        ...["train", "sft", "--model", ID, "--data", "sft.jsonl", "--output", "sft-out"],
        ...["--max-steps", "1", "--per_device_train_batch_size", "2", "--max-length", "32", "--no-progress"],
      ],
      hubEnv(pyHome, true),
    );
    const printed = JSON.parse(train.stdout);
    expect(printed.model.base).toEqual({ kind: "hf-model", path: ID, revision: commit });
    expect(printed.sources).toEqual([
      { role: "model", type: "model", repo: ID, revision: "main", commit },
      { role: "tokenizer", type: "model", repo: ID, revision: "main", commit },
    ]);
    const adapterConfig = JSON.parse(await readFile(join(dir, "sft-out", "adapter_config.json"), "utf8"));
    expect(adapterConfig.base_model_name_or_path).toBe(ID);
    hub.requests.length = 0;
    await ok(
      ["merge", "--model", ID, "--revision", commit, "--adapter", "sft-out", "--output", "merged"],
      hubEnv(pyHome, true),
    );
    expect(existsSync(join(dir, "merged", "model.safetensors"))).toBe(true);
    expect(existsSync(join(dir, "merged", "tokenizer.json"))).toBe(true);
    expect(hub.requests).toEqual([]);
  });
});
