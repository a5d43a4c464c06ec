/**
 * The set-up of the tests that run `hippo` as a user runs it: the bin shim in a child process, in a temp
 * folder, on a tiny random Llama made by `hippo init` with the real Llama-2 tokenizer from the shared data.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { writeTokenizerFolder } from "../../src/miniature/tokenizer.js";

export const HIPPO = fileURLToPath(new URL("../../bin/hippo.mjs", import.meta.url));
// Shared data sits beside the repository (resolved from the repo root, never an absolute path).
export const DATA = fileURLToPath(new URL("../../../../../shared/data/", import.meta.url));
export const LLAMA2_TOKENIZER = join(DATA, "tokenizers", "llama2");

export interface HippoRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Start `hippo ...args` in `cwd`; `env` is laid over this process's environment. */
export function startHippo(cwd: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, [HIPPO, ...args], { cwd, env: { ...process.env, ...env } });
}

/** Run `hippo ...args` in `cwd` to completion without blocking the test runner. */
export function runHippo(cwd: string, args: string[], env: Record<string, string> = {}): Promise<HippoRun> {
  return new Promise((resolve) => {
    const child = startHippo(cwd, args, env);
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => (stdout += d));
    child.stderr?.on("data", (d: Buffer) => (stderr += d));
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

/** Exit 0; the stderr (progress bars otherwise) rides along so that a failure shows the command's message. */
export function expectOk(r: { status: number | null; stderr: string }): void {
  expect({ status: r.status, stderr: r.status === 0 ? "" : r.stderr }).toEqual({ status: 0, stderr: "" });
}

/** `runHippo` that must exit 0 (see `expectOk`). */
export async function runHippoOk(
  cwd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<HippoRun> {
  const r = await runHippo(cwd, args, env);
  expectOk(r);
  return r;
}

/**
 * A fresh temp folder holding tiny.json, a tiny random Llama's config.json for `hippo init --config` (hidden 32,
 * 2 layers keeps every command to a few seconds; 32000 = the Llama-2 tokenizer's vocabulary); `overrides` are
 * the fields a test changes. `removeTempDir` removes it.
 */
export async function tinyLlamaFolder(
  prefix: string,
  overrides: Record<string, unknown> = {},
): Promise<string> {
  const dir = await makeTempDir(prefix);
  await writeFile(
    join(dir, "tiny.json"),
    JSON.stringify({
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
      hidden_size: 32,
      intermediate_size: 64,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      hidden_act: "silu",
      max_position_embeddings: 512,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      tie_word_embeddings: false,
      vocab_size: 32000,
      bos_token_id: 1,
      eos_token_id: 2,
      torch_dtype: "float32",
      ...overrides,
    }),
  );
  return dir;
}

/** `hippo init` of tiny.json with the Llama-2 tokenizer into `output`, then `extra` flags. */
export const initArgs = (output: string, ...extra: string[]) => [
  "init",
  "--config",
  "tiny.json",
  "--output",
  output,
  "--tokenizer",
  LLAMA2_TOKENIZER,
  ...extra,
];

/** A fresh temp folder named `hippo-<prefix>-...`; `removeTempDir` removes it (when it was made). */
export function makeTempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `hippo-${prefix}-`));
}

export async function removeTempDir(dir: string | undefined): Promise<void> {
  if (dir) await rm(dir, { recursive: true, force: true });
}

/**
 * A model folder the pipeline's pre-flight checks accept, for stages that train nothing: a tokenizer over
 * "hello world" and a config.json whose vocab_size fits it. Returns the vocabulary size.
 */
export async function writeStubModelFolder(path: string): Promise<number> {
  await mkdir(path);
  const vocab = await writeTokenizerFolder(path, ["hello world"]);
  await writeFile(join(path, "config.json"), `{"model_type":"llama","vocab_size":${vocab}}\n`);
  return vocab;
}

/** Write `text` to `dir/name` and return its path (a pipeline config, mostly). */
export async function writeConfigFile(dir: string, name: string, text: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, text);
  return file;
}
