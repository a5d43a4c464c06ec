/**
 * `hippo eval` as lm-evaluation-harness users run it: commands in the harness's spelling (`--model hf
 * --model_args pretrained=...`, `--model local-completions --model_args base_url=...`, `--num_fewshot`,
 * `--batch_size`, `--output_path`, `--log_samples`, `--seed`, `--write_out`, `--include_path`) on a tiny
 * random Llama with the Llama-2 tokenizer, in a child process as a user runs it. The files they write have
 * the key tree of the harness's own output (`packages/eval/test/fixtures/lm_eval_key_tree.json`: its CPU
 * regression snapshots and the code that writes the other keys, sources named there); a run killed with
 * SIGKILL and run again, and shards merged with `hippo eval merge`, write byte-identical files to one clean
 * run (SOURCE_DATE_EPOCH fixes the clock); `hippo report` reads them.
 */
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectReport } from "../src/report/collect.js";
import {
  DATA,
  initArgs,
  LLAMA2_TOKENIZER,
  removeTempDir,
  runHippo,
  runHippoOk,
  startHippo,
  tinyLlamaFolder,
} from "./helpers/cli.js";

const TREE = JSON.parse(
  await readFile(
    fileURLToPath(new URL("../../eval/test/fixtures/lm_eval_key_tree.json", import.meta.url)),
    "utf8",
  ),
);
const EPOCH = "1714566896"; // SOURCE_DATE_EPOCH: the results' clock

let dir: string;
beforeAll(async () => {
  dir = await tinyLlamaFolder("cli-eval", { vocab_size: 1000 });
  const init = await hippo(initArgs("base", "--vocab-size", "32000"), {});
  expect(init.status).toBe(0);
});
afterAll(() => removeTempDir(dir));

const start = (args: string[], env: Record<string, string>) => startHippo(dir, args, env);
const hippo = (args: string[], env: Record<string, string> = { SOURCE_DATE_EPOCH: EPOCH }) =>
  runHippo(dir, args, env);
const ok = (...args: string[]) => runHippoOk(dir, args, { SOURCE_DATE_EPOCH: EPOCH });

/** Every file of an output folder (recursively, the request cache left out), as text. */
async function folder(rel: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string, prefix: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.name === ".hippo-cache") continue;
      if (e.isDirectory()) await walk(join(d, e.name), `${prefix}${e.name}/`);
      else out[prefix + e.name] = await readFile(join(d, e.name), "utf8");
    }
  };
  await walk(join(dir, rel), "");
  return out;
}

const readJsonl = (text: string) =>
  text
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** Keys of an object, recursively, with the JSON type of each leaf ("number", "string", ...). */
function keyTree(v: unknown): unknown {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "object")
    return Object.fromEntries(
      Object.keys(v as object)
        .sort()
        .map((k) => [k, keyTree((v as Record<string, unknown>)[k])]),
    );
  return typeof v;
}

const DATE = (() => {
  const d = new Date(Number(EPOCH) * 1000);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}-${p(d.getMinutes())}-${p(d.getSeconds())}`;
})();

describe("hippo eval in lm-evaluation-harness's spelling", () => {
  it("writes results and samples whose key tree is that of a real lm-evaluation-harness 0.4 output", async () => {
    // A group of two multiple-choice tasks reporting acc and acc_norm, as the harness's regression_arc.
    await mkdir(join(dir, "tasks"), { recursive: true });
    await writeFile(
      join(dir, "tasks", "group.json"),
      JSON.stringify({
        group: "regression_med",
        task: ["medqa_4options", "medmcqa"],
        aggregate_metric_list: [
          { metric: "acc", aggregation: "mean", weight_by_size: true },
          { metric: "acc_norm", aggregation: "mean", weight_by_size: true },
        ],
        version: 1,
      }),
    );
    const { stdout, stderr } = await ok(
      ...["eval", "--model", "hf", "--model_args", "pretrained=base,dtype=float32"],
      ...["--tasks", "regression_med", "--include_path", "tasks", "--num_fewshot", "0", "--batch_size", "2"],
      ...["--output_path", "out", "--log_samples", "--limit", "1", "--seed", "1234", "--write_out"],
      ...["--data-dir", DATA, "--profile", "current", "--no-progress"],
    );
    expect(stdout).toContain(`results: ${join(dir, "out", "base", `results_${DATE}.json`)}`);
    // --write_out: the first document's prompt and target, as the harness's print_writeout.
    expect(stderr).toMatch(
      /Task: medqa_4options; document 0; context prompt \(starting on next line\):\nQuestion: /,
    );
    const files = await folder("out");
    expect(Object.keys(files).sort()).toEqual([
      `base/results_${DATE}.json`,
      `base/samples_medmcqa_${DATE}.jsonl`,
      `base/samples_medqa_4options_${DATE}.jsonl`,
    ]);
    const results = JSON.parse(files[`base/results_${DATE}.json`] as string);
    const snap = TREE.snapshot_group_run;
    // The sections of the harness's snapshot, task for task (arc_easy -> medqa_4options, the group -> ours).
    expect(keyTree(results.results.medqa_4options)).toEqual(keyTree(snap.results.arc_easy));
    expect(keyTree(results.results.regression_med)).toEqual(keyTree(snap.results.regression_arc));
    expect(keyTree(results.groups.regression_med)).toEqual(keyTree(snap.groups.regression_arc));
    expect(keyTree(results["n-samples"].medqa_4options)).toEqual(keyTree(snap["n-samples"].arc_easy));
    expect(keyTree(results.higher_is_better.medqa_4options)).toEqual(keyTree(snap.higher_is_better.arc_easy));
    expect(keyTree(results.higher_is_better.regression_med)).toEqual(
      keyTree(snap.higher_is_better.regression_arc),
    );
    expect(Object.keys(results["n-shot"]).sort()).toEqual(["medmcqa", "medqa_4options", "regression_med"]);
    expect(Object.keys(results.versions).sort()).toEqual(["medmcqa", "medqa_4options", "regression_med"]);
    expect(results.group_subtasks).toEqual({ regression_med: ["medqa_4options", "medmcqa"] });
    expect(results.results.medqa_4options.alias).toBe(" - medqa_4options");
    // The keys the snapshots leave out, from the code that writes them.
    expect(Object.keys(results).sort()).toEqual([...TREE.results_top_level, "groups"].sort());
    expect(Object.keys(results.config)).toEqual(expect.arrayContaining(TREE.config));
    expect(Object.keys(results.configs.medqa_4options)).toEqual(expect.arrayContaining(TREE.task_config));
    for (const m of results.configs.medqa_4options.metric_list)
      expect(Object.keys(m).sort()).toEqual([...TREE.metric_list_entry].sort());
    expect(results).toMatchObject({
      model_source: "hf",
      model_name: "base",
      model_name_sanitized: "base",
      config: {
        model: "hf",
        model_args: "pretrained=base,dtype=float32",
        fewshot_seed: 1234,
        profile: "current",
      },
      date: Number(EPOCH),
    });
    for (const task of ["medqa_4options", "medmcqa"]) {
      const rows = readJsonl(files[`base/samples_${task}_${DATE}.jsonl`] as string);
      expect(rows).toHaveLength(1);
      const r = rows[0] as Record<string, unknown>;
      expect(Object.keys(r)).toEqual([...TREE.sample_row, "acc", "acc_norm", "hippo"]);
      expect(r.doc_id).toBe(0);
      expect(r.metrics).toEqual(["acc", "acc_norm"]);
      expect(r.filter).toBe("none");
      expect(Object.keys(r.arguments as object)).toEqual([
        "gen_args_0",
        "gen_args_1",
        "gen_args_2",
        "gen_args_3",
      ]);
      expect(
        (r.filtered_resps as string[][]).every(
          (x) => /^-\d/.test(x[0] as string) && /^(True|False)$/.test(x[1] as string),
        ),
      ).toBe(true);
      expect((r.resps as string[][][]).map((x) => x[0])).toEqual(r.filtered_resps);
    }
    expect(Object.keys(results.task_hashes).sort()).toEqual(["medmcqa", "medqa_4options"]);
  });

  it("--output_path ending in .json writes <stem>_<date>.json beside it; a folder stays a folder; a file is refused", async () => {
    const args = [
      "eval",
      "--model",
      "hf",
      "--model_args",
      "pretrained=base",
      "--tasks",
      "medqa_usmle",
      "--limit",
      "1",
    ];
    const rest = ["--data-dir", DATA, "--no-progress"];
    await ok(...args, "--output_path", "named/res.json", "--log_samples", ...rest);
    expect((await readdir(join(dir, "named"))).filter((n) => !n.startsWith(".")).sort()).toEqual([
      `res_${DATE}.json`,
      `samples_medqa_usmle_${DATE}.jsonl`,
    ]);
    await mkdir(join(dir, "dir.json"));
    await ok(...args, "--output_path", "dir.json", ...rest);
    expect(existsSync(join(dir, "dir.json", "base", `results_${DATE}.json`))).toBe(true);
    await writeFile(join(dir, "plainfile"), "keep me");
    const refused = await hippo([...args, "--output_path", "plainfile", ...rest]);
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toContain("plainfile");
    expect(refused.stderr).toContain("the output path is a file; expected a folder");
    expect(await readFile(join(dir, "plainfile"), "utf8")).toBe("keep me");
  });

  it("bad --model and --model_args get clear errors with a did-you-mean", async () => {
    // Offline with an empty cache: a Hub id that is not cached is named, never fetched from the real Hub.
    const env = { SOURCE_DATE_EPOCH: EPOCH, HF_HOME: join(dir, "empty-hf-home"), HF_HUB_OFFLINE: "1" };
    const run = (...a: string[]) => hippo(["eval", ...a, "--tasks", "medqa_usmle", "--data-dir", DATA], env);
    const typo = await run("--model", "hf", "--model_args", "pretrianed=base");
    expect(typo.stderr).toContain(
      'unknown model_args key for --model hf "pretrianed"; did you mean "pretrained"?',
    );
    const missing = await run("--model", "hf", "--model_args", "dtype=float32");
    expect(missing.stderr).toContain("--model hf needs pretrained=<model folder or Hub id>");
    const kind = await run("--model", "hff", "--model_args", "pretrained=base");
    expect(kind.stderr).toContain('unknown --model "hff"; did you mean "hf"?');
    const hub = await run("--model", "hf", "--model_args", "pretrained=meta-llama/Llama-2-7b-hf");
    expect(hub.stderr).toContain(
      "meta-llama/Llama-2-7b-hf is not in the Hub cache and HF_HUB_OFFLINE is set: refs/main is missing",
    );
    for (const r of [typo, missing, kind, hub]) expect(r.status).not.toBe(0);
  });
});

describe("byte-identical files: a run killed with SIGKILL and run again, shards merged, one clean run", () => {
  // PubMedQA 3-shot (shots from its fold-0 train split): long contexts, left-truncated to the model's 512.
  const args = [
    ...["eval", "--model", "hf", "--model_args", "pretrained=base", "--tasks", "pubmedqa"],
    ...["--profile", "current", "--num_fewshot", "3", "--limit", "40", "--log_samples", "--data-dir", DATA],
    "--no-progress",
  ];

  it("clean, killed + resumed, and 2 shards merged write the same bytes", async () => {
    await ok(...args, "--batch_size", "1", "--output_path", "clean");
    const clean = await folder("clean");

    // Killed while it runs (as soon as its request cache is open: before or during scoring, wherever a fast
    // run has got to), then the same command again. Whatever a kill interrupts (a cache append, an output's
    // temporary file), the rerun writes the clean run's bytes and leaves nothing of the killed run behind.
    const child = start([...args, "--batch_size", "1", "--output_path", "killed"], {
      SOURCE_DATE_EPOCH: EPOCH,
    });
    const cacheDir = join(dir, "killed", "base", ".hippo-cache");
    let running = true;
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on("exit", (_c, s) => {
        running = false;
        resolve(s);
      }),
    );
    while (running && !existsSync(cacheDir)) await new Promise((r) => setTimeout(r, 10));
    child.kill("SIGKILL");
    expect(await exited).toBe("SIGKILL");
    await ok(...args, "--batch_size", "1", "--output_path", "killed");
    expect(await folder("killed")).toEqual(clean);

    // Resumed from a cache that a kill cut short, made exactly: the clean run's first 10 documents and a torn
    // 11th line (a kill mid-append). Those 10 are read back, the rest scored: the same bytes.
    const [cacheName] = await readdir(join(dir, "clean", "base", ".hippo-cache"));
    const lines = (
      await readFile(join(dir, "clean", "base", ".hippo-cache", cacheName as string), "utf8")
    ).split("\n");
    expect(lines.length).toBeGreaterThan(12);
    await mkdir(join(dir, "partial", "base", ".hippo-cache"), { recursive: true });
    await writeFile(
      join(dir, "partial", "base", ".hippo-cache", cacheName as string),
      `${lines.slice(0, 10).join("\n")}\n${(lines[10] as string).slice(0, 20)}`,
    );
    const resumed = await ok(...args, "--batch_size", "1", "--output_path", "partial");
    expect(resumed.stderr).toContain("discarded 1 unusable line"); // the torn one; the 10 before it were used
    expect(await folder("partial")).toEqual(clean);

    // Two shards with different batch sizes, merged.
    await ok(...args, "--batch_size", "1", "--shard", "0/2", "--output_path", "s0");
    await ok(...args, "--batch_size", "3", "--shard", "1/2", "--output_path", "s1");
    await ok("eval", "merge", "s0", "s1", "--output_path", "merged", "--log_samples");
    expect(await folder("merged")).toEqual(clean);
  });
});

describe("--model local-completions: an OpenAI-compatible completions server", () => {
  let server: Server;
  let port = 0;
  const bodies: Record<string, unknown>[] = [];
  /** A server that echoes the prompt's token ids with made-up log-probabilities (the token's id mod 7). */
  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (d) => (body += d));
      req.on("end", () => {
        const b = JSON.parse(body) as { prompt: number[][]; model: string };
        bodies.push({ ...b, path: req.url });
        const choices = b.prompt.map((ids, index) => ({
          index,
          text: "",
          logprobs: {
            tokens: ids.map(String),
            token_logprobs: ids.map((id, i) => (i === 0 ? null : -((id % 7) + 1) / 10)),
            top_logprobs: ids.map((id, i) =>
              i === 0 ? null : { [String(id % 3 === 0 ? id : id + 1)]: -0.1 },
            ),
          },
        }));
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ id: "x", object: "text_completion", model: b.model, choices }));
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it("scores through the server with token-id prompts; the results name the model", async () => {
    await ok(
      ...["eval", "--model", "local-completions"],
      ...[
        "--model_args",
        `base_url=http://127.0.0.1:${port}/v1/completions,model=fake-7b,tokenizer=${LLAMA2_TOKENIZER},num_concurrent=2`,
      ],
      ...[
        "--tasks",
        "pubmedqa",
        "--limit",
        "3",
        "--output_path",
        "remote",
        "--log_samples",
        "--data-dir",
        DATA,
      ],
      "--no-progress",
    );
    expect(bodies.length).toBeGreaterThan(0);
    for (const b of bodies)
      expect(b).toMatchObject({ path: "/v1/completions", model: "fake-7b", echo: true, max_tokens: 0 });
    const files = await folder("remote");
    const results = JSON.parse(files[`fake-7b/results_${DATE}.json`] as string);
    expect(results).toMatchObject({ model_source: "local-completions", model_name: "fake-7b" });
    for (const r of readJsonl(files[`fake-7b/samples_pubmedqa_${DATE}.jsonl`] as string)) {
      const lls = (r.filtered_resps as string[][]).map((x) => Number(x[0]));
      const gold = (r.hippo as { gold: number }).gold;
      expect(r.acc).toBe(lls.indexOf(Math.max(...lls)) === gold ? 1 : 0);
    }
  });
});

describe("hippo report reads lm-evaluation-harness 0.4 files", () => {
  it("scores and samples of an eval stage, found beside the recorded path", async () => {
    const run = join(dir, "report-run");
    const stageDir = join(run, "stages", "eval-base");
    await mkdir(stageDir, { recursive: true });
    // The harness layout under the stage folder, as `hippo eval --output_path <stage folder>` writes it.
    const { cp } = await import("node:fs/promises");
    await cp(join(dir, "clean", "base"), join(stageDir, "base"), { recursive: true });
    await writeFile(
      join(run, "manifest.json"),
      JSON.stringify({
        format: "hippo-run/1",
        name: "r",
        status: "done",
        createdAt: "",
        updatedAt: "",
        configFile: "",
        config: {},
        packages: {},
        backend: {},
        machine: { node: "", platform: "", cpu: "", cores: 1 },
        stages: [
          {
            id: "eval-base",
            kind: "eval",
            fingerprint: "",
            status: "done",
            outputDir: stageDir,
            attempts: 1,
            output: { model: { kind: "hf-model", path: "base" }, metrics: {}, files: { results: stageDir } },
          },
        ],
      }),
    );
    const data = await collectReport(run);
    const results = JSON.parse((await folder("clean"))[`base/results_${DATE}.json`] as string);
    expect(data.evals).toHaveLength(1);
    expect(data.evals[0]?.tasks.pubmedqa?.acc).toBe(results.results.pubmedqa["acc,none"]);
    expect(data.evals[0]?.tasks.pubmedqa?.n).toBe(40);
    expect(data.samples).toHaveLength(40);
    expect(data.samples[0]).toMatchObject({ task: "pubmedqa", options: [" yes", " no", " maybe"] });
    expect(data.samples[0]?.context).toMatch(/^Abstract: /);
  });
});
