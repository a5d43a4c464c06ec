/**
 * Document order and few-shot contexts, per profile.
 *
 * "v0.3" (lm-evaluation-harness v0.3 `evaluator.evaluate` + `Task.fewshot_context`, as the authors ran it):
 *   rnd = random.Random(); rnd.seed(42); rnd.shuffle(docs)            -- always, with or without a limit
 *   limit: int(len * limit) if limit < 1 else int(limit); the first `limit` docs after the shuffle
 *   for each doc, in that order, from the same stream:
 *     train docs:  shots = rnd.sample(train_docs, k)
 *     otherwise:   shots = [x for x in rnd.sample(test_docs, k + 1) if x != doc][:k]  (test_docs in file order)
 *   context = description + "\n\n".join(doc_to_text(s) + " " + gold_text(s) for s in shots) + "\n\n" + doc_to_text(doc)
 *   (the "\n\n" after the shots only when k > 0). Docs beyond the limit draw nothing.
 *
 * "current" (lm-evaluation-harness 0.4: `api/task.py` `build_all_requests` / `fewshot_context`, `api/samplers.py`
 * at 0.4.9.1, `evaluator.py` `set_fewshot_seed`): docs in file order; `limit` the first N
 * (`ceil(len * limit)` when < 1, `evaluator_utils.get_sample_size`); one `random.Random(fewshot_seed)` per
 * task (1234 by default), drawn from document by document in that order (documents past the limit draw
 * nothing, so a document's shots depend neither on the limit nor on the shard):
 *     first_n sampler (MMLU):  shots = dev_docs[:k]
 *     training docs:           shots = rnd.sample(train_docs, k)
 *     no training docs:        shots = [x for x in rnd.sample(test_docs, k) if x != doc][:k]
 * (the harness draws k + 1 only when a task's `fewshot_split` equals its `test_split`; a task that falls back
 * to its test docs draws k, so such a document can get k - 1 shots there, and here).
 * Context = description + "".join(doc_to_text(s) + target_delimiter + target(s) + "\n\n") + doc_to_text(doc).
 */
import { HippoError } from "@hippocrates/core";
import { PyRandom } from "./pyrandom.js";
import type { Profile } from "./tasks/registry.js";
import type { EvalDoc, TaskData, TaskDefinition } from "./tasks/types.js";

export interface ContextOptions {
  profile: Profile;
  numFewshot: number;
  /** A count, or a fraction of the documents when < 1 (as the v0.3 harness). */
  limit?: number;
  /** v0.3 stream seed (42 in the harness). */
  seed?: number;
  /** Current-profile few-shot seed (the current harness's default is 1234). */
  fewshotSeed?: number;
}

/** One document ready for scoring. */
export interface BuiltDoc {
  /** Position in evaluation order (after the v0.3 shuffle); shards and output rows are keyed by it. */
  position: number;
  /** Index of the document in the task's test file. */
  docIndex: number;
  doc: EvalDoc;
  /** The full prompt: description, shots, the document's own prompt. */
  context: string;
  /** Continuations scored, each with the target delimiter (" A", " yes", ...). */
  continuations: string[];
  /** Choice texts without the delimiter (acc_norm divides by their length). */
  choices: string[];
  gold: number;
  /** Ids of the few-shot documents, in order. */
  shotIds: string[];
}

/**
 * Documents evaluated under `limit`: a count, or a fraction of the documents when < 1, rounded down as the
 * v0.3 harness (`int(len * limit)`) or up as 0.4 (`ceil(len * limit)`).
 */
export function applyLimit(n: number, limit: number | undefined, profile: Profile = "v0.3"): number {
  if (limit === undefined || limit === null) return n;
  if (!(limit >= 0) || !Number.isFinite(limit)) {
    throw new HippoError("INVALID_ARGUMENT", "limit must be a non-negative number", {
      key: "limit",
      got: String(limit),
    });
  }
  const fraction = profile === "v0.3" ? Math.trunc(n * limit) : Math.ceil(n * limit);
  return Math.min(n, limit < 1 ? fraction : Math.trunc(limit));
}

export function defaultDocKey(task: TaskDefinition): (doc: EvalDoc) => string {
  return task.docKey ?? ((doc) => JSON.stringify([task.docToText(doc), task.docToChoices(doc), doc.gold]));
}

function goldText(task: TaskDefinition, doc: EvalDoc): string {
  const choices = task.docToChoices(doc);
  const t = choices[doc.gold];
  if (t === undefined)
    throw new HippoError("INVALID_RECORD", `task ${task.name}: gold index out of range`, {
      key: doc.id,
      expected: `0..${choices.length - 1}`,
      got: String(doc.gold),
    });
  return t;
}

export function buildContexts(task: TaskDefinition, data: TaskData, opts: ContextOptions): BuiltDoc[] {
  const k = opts.numFewshot;
  if (!Number.isInteger(k) || k < 0)
    throw new HippoError("INVALID_ARGUMENT", "num_fewshot must be a non-negative integer", {
      key: "numFewshot",
      got: String(k),
    });
  const test = data.test;
  if (test.length === 0)
    throw new HippoError("INVALID_FORMAT", `task ${task.name}: no documents to evaluate`, {
      file: data.files?.test,
      expected: "at least one document",
      got: "none",
    });
  const order = test.map((_, i) => i);
  const v03 = opts.profile === "v0.3";
  // v0.3: one stream for the shuffle and every draw; current: the task's few-shot sampler's own stream.
  const stream = new PyRandom(v03 ? (opts.seed ?? 42) : (opts.fewshotSeed ?? 1234));
  if (v03) stream.shuffle(order);
  const n = applyLimit(order.length, opts.limit, opts.profile);
  const key = defaultDocKey(task);
  const description = task.description ?? "";

  if (k > 0) {
    if (task.fewshot === "train" && !data.train) {
      const where = data.files?.train;
      throw new HippoError(
        "NOT_FOUND",
        `task ${task.name}: ${k}-shot needs its training documents, which were not found`,
        {
          file: where,
          expected: "the training split in the same format as the test file",
        },
      );
    }
    if (task.fewshot === "dev_first_k" && (!data.dev || data.dev.length < k)) {
      throw new HippoError("NOT_FOUND", `task ${task.name}: ${k}-shot needs ${k} dev documents`, {
        got: String(data.dev?.length ?? 0),
      });
    }
    if (task.fewshot === "train" && (data.train?.length ?? 0) < k) {
      throw new HippoError("INVALID_ARGUMENT", `task ${task.name}: ${k}-shot needs ${k} training documents`, {
        file: data.files?.train,
        got: String(data.train?.length ?? 0),
      });
    }
    if (task.fewshot === "test" && test.length < k + 1) {
      throw new HippoError(
        "INVALID_ARGUMENT",
        `task ${task.name}: ${k}-shot needs at least ${k + 1} test documents`,
        { got: String(test.length) },
      );
    }
  }

  const out: BuiltDoc[] = [];
  for (let position = 0; position < n; position++) {
    const docIndex = order[position] as number;
    const doc = test[docIndex] as EvalDoc;
    let shots: EvalDoc[] = [];
    if (k > 0) {
      if (task.fewshot === "dev_first_k") shots = (data.dev as EvalDoc[]).slice(0, k);
      else if (task.fewshot === "train") shots = stream.sample(data.train as EvalDoc[], k);
      else {
        const own = key(doc);
        shots = stream
          .sample(test, v03 ? k + 1 : k)
          .filter((x) => key(x) !== own)
          .slice(0, k);
      }
    }
    const labeled =
      k > 0
        ? `${shots.map((s) => task.docToText(s) + task.targetDelimiter + goldText(task, s)).join("\n\n")}\n\n`
        : "";
    const choices = task.docToChoices(doc);
    goldText(task, doc);
    out.push({
      position,
      docIndex,
      doc,
      context: description + labeled + task.docToText(doc),
      continuations: choices.map((c) => task.targetDelimiter + c),
      choices,
      gold: doc.gold,
      shotIds: shots.map((s) => s.id),
    });
  }
  return out;
}
