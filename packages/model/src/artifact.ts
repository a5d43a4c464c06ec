/**
 * Models as the pipeline passes them along (core's `ModelArtifact`): an HF folder (or Hub id), or a chain of
 * PEFT adapters over one. `loadArtifact` turns an artifact into a model with the adapters merged in order,
 * exactly the model a stage trained on; evaluation, serving and merging all load through it, so none of them
 * needs the train package.
 *
 * A PEFT adapter names its base in `adapter_config.json`'s `base_model_name_or_path`, which PEFT's
 * `PeftModel.from_pretrained` / `AutoPeftModelForCausalLM` (peft/auto.py) hand unchanged to transformers'
 * `from_pretrained`: a Hub id, or a path that must exist where Python runs. We write a path relative to the
 * adapter folder, prefixed `./` or `../` so that it can never be mistaken for a Hub id (`peftBasePath`), and
 * read such a path back against the adapter folder (`adapterArtifact`); a machine-absolute path is never written.
 */
import { existsSync, statSync } from "node:fs";
import { copyFile } from "node:fs/promises";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import {
  describeValue,
  HippoError,
  isPlainObject,
  type ModelArtifact,
  readJsonFile,
} from "@hippocrates/core";
import { loadModel } from "./io.js";
import type { CausalLM } from "./llama.js";
import { ADAPTER_CONFIG, loadAdapter, mergeAdapter } from "./lora.js";

/** Load an artifact: an HF folder, or the adapters of a chain merged into their base in order. */
export async function loadArtifact(artifact: ModelArtifact): Promise<CausalLM> {
  // A Hub model or adapter is pinned by `revision` (the pipeline writes the commit it resolved to).
  if (artifact.kind === "hf-model") return loadModel(artifact.path, { revision: artifact.revision });
  if (artifact.kind !== "peft-adapter")
    throw new HippoError("INVALID_ARGUMENT", "unknown model artifact", {
      key: "model.kind",
      expected: "hf-model | peft-adapter",
      got: describeValue((artifact as { kind: unknown }).kind),
    });
  const model = await loadArtifact(artifact.base);
  try {
    const name = `merge-${artifact.path}`;
    await loadAdapter(model, artifact.path, { name, revision: artifact.revision });
    mergeAdapter(model, name);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/** The HF folder (or Hub id) at the bottom of a chain. */
export function basePathOf(artifact: ModelArtifact): string {
  return artifact.kind === "hf-model" ? artifact.path : basePathOf(artifact.base);
}

/**
 * Whether a model reference is a path on this machine rather than a Hub id: absolute, `./`/`../`-relative,
 * or an existing file or folder (a bare `gpt2` folder in the working directory is a path, as for transformers).
 */
export function isLocalModelPath(pathOrId: string): boolean {
  return (
    isAbsolute(pathOrId) ||
    pathOrId === "." ||
    pathOrId === ".." ||
    /^\.\.?[\\/]/.test(pathOrId) ||
    existsSync(pathOrId)
  );
}

/**
 * The `base_model_name_or_path` to write into an adapter saved in `adapterDir` whose base is `base`: a Hub id
 * as it is; a local path relative to the adapter folder, always starting `./` or `../` and with `/`
 * separators (what PEFT, run from that folder, and our `adapterArtifact`, run from anywhere, both load).
 */
export function peftBasePath(adapterDir: string, base: string): string {
  if (!isLocalModelPath(base)) return base;
  const rel = relative(resolve(adapterDir), resolve(base)).split(sep).join("/");
  if (isAbsolute(rel))
    throw new HippoError(
      "UNSUPPORTED",
      "the base model is on another drive than the adapter; a relative path cannot name it",
      { file: adapterDir, key: "base_model_name_or_path", got: base },
    );
  if (rel === "") return ".";
  return rel.startsWith("../") || rel === ".." ? rel : `./${rel}`;
}

/**
 * The artifact of a PEFT adapter folder, its base taken from `adapter_config.json` the way PEFT takes it,
 * except that a `./` or `../` path is read relative to the adapter folder (what we write), not to the working
 * directory. The base must be a full model (PEFT loads nothing else there).
 */
export async function adapterArtifact(
  dir: string,
): Promise<Extract<ModelArtifact, { kind: "peft-adapter" }>> {
  const file = join(dir, ADAPTER_CONFIG);
  const config = await readJsonFile(file);
  const base = isPlainObject(config) ? config.base_model_name_or_path : undefined;
  if (typeof base !== "string" || base.length === 0)
    throw new HippoError("INVALID_CONFIG", "the adapter does not name its base model", {
      file,
      key: "base_model_name_or_path",
      expected: "a Hub id or a path to an HF model folder",
      got: describeValue(base),
    });
  const path = /^\.\.?([\\/]|$)/.test(base) ? join(dir, base) : base;
  return { kind: "peft-adapter", path: dir, base: { kind: "hf-model", path } };
}

/** The files of an HF tokenizer folder (what `AutoTokenizer.from_pretrained` and `loadTokenizer` read). */
export const TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "tokenizer.model",
  "chat_template.jinja",
  "chat_template.json",
] as const;

/**
 * Copy the tokenizer files of a local tokenizer folder beside a model, so the folder is usable on its own
 * (`hippo serve DIR`, `AutoTokenizer.from_pretrained(DIR)`). Files already there are kept; a Hub id (not a
 * local folder) copies nothing. Returns the names copied.
 */
export async function copyTokenizerFiles(from: string, to: string): Promise<string[]> {
  if (!existsSync(from) || !statSync(from).isDirectory()) return [];
  const copied: string[] = [];
  for (const f of TOKENIZER_FILES) {
    if (existsSync(join(from, f)) && !existsSync(join(to, f))) {
      await copyFile(join(from, f), join(to, f));
      copied.push(f);
    }
  }
  return copied;
}
