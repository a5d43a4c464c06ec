/**
 * The base models of a pipeline, resolved: a folder, or a Hub id found in the Hugging Face cache or fetched
 * into it (through the commands' one resolver, `resolveSource`). A Hub model goes to the stages as its id at
 * the commit it resolved to (`{ kind: "hf-model", path: "org/name", revision: "<sha>" }`), so the manifest, an
 * adapter's `base_model_name_or_path` and a later run all name the same weights; its tokenizer goes as the
 * cache folder of the tokenizer files (what the stages load and copy beside a merged model).
 */
import type { ModelArtifact, ProgressReporter, ResolvedSource } from "@hippocrates/core";
import {
  modelArtifact,
  type Resolved,
  resolveSource,
  resolveTokenizer,
  sourceRecord,
} from "../commands/shared.js";
import type { BaseModel } from "../config/load.js";

export interface ResolvedBase {
  /** The artifact the branch's first stage takes. */
  artifact: ModelArtifact;
  /** The tokenizer folder the branch's stages load. */
  tokenizer: string;
  /** The model's and tokenizer's Hub origins (empty for folders). */
  sources: ResolvedSource[];
  model: Resolved;
}

/**
 * Resolve one base model: `kind` "model" fetches the weights (a run), "config" only config.json (the pre-flight
 * checks and `--dry-run`, which download no weights). `offline` looks in the cache only (the `--dry-run` plan).
 */
export async function resolveBase(
  m: BaseModel,
  kind: "model" | "config",
  progress: ProgressReporter,
  options: { offline?: boolean } = {},
): Promise<ResolvedBase> {
  const key = m.key === "model" ? "model" : `${m.key}.model`;
  const { offline } = options;
  const model = await resolveSource(m.model, kind, { flag: key, revision: m.revision, progress, offline });
  const tokenizer =
    m.tokenizer === undefined
      ? await resolveTokenizer(undefined, { name: m.model, resolved: model }, progress, { offline })
      : await resolveSource(m.tokenizer, "tokenizer", {
          flag: m.key === "model" ? "tokenizer" : `${m.key}.tokenizer`,
          progress,
          offline,
        });
  const sources = [
    sourceRecord(`model ${m.name}`, model),
    sourceRecord(`tokenizer ${m.name}`, tokenizer),
  ].filter((s) => s !== undefined);
  return { artifact: modelArtifact(model), tokenizer: tokenizer.path, sources, model };
}
