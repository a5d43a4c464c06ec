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
 * "current" (today's EleutherAI harness, our reading of it): docs in file order, `limit` the first N; shots
 * from the first k dev docs (`first_n`, MMLU) or a random draw as above, but from a stream seeded per
 * document (key [fewshotSeed, docIndex]) so a document's shots do not depend on the limit or the shard.
 * Same joining: description + shots joined by "\n\n" + "\n\n" + prompt.
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

export function applyLimit(n: number, limit: number | undefined): number {
  if (limit === undefined || limit === null) return n;
  if (!(limit >= 0) || !Number.isFinite(limit)) {
    throw new HippoError("INVALID_ARGUMENT", "limit must be a non-negative number", {
      key: "limit",
      got: String(limit),
    });
  }
  return Math.min(n, limit < 1 ? Math.trunc(n * limit) : Math.trunc(limit));
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
  const order = test.map((_, i) => i);
  const stream = new PyRandom(opts.seed ?? 42);
  if (opts.profile === "v0.3") stream.shuffle(order);
  const n = applyLimit(order.length, opts.limit);
  const key = defaultDocKey(task);
  const description = task.description ?? "";

  if (k > 0) {
    if (task.fewshot === "train" && !data.train) {
      const where = (data as { trainPath?: string }).trainPath;
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
      else {
        const rnd =
          opts.profile === "v0.3"
            ? stream
            : new PyRandom((BigInt(opts.fewshotSeed ?? 1234) << 32n) | BigInt(docIndex));
        if (task.fewshot === "train") shots = rnd.sample(data.train as EvalDoc[], k);
        else {
          const own = key(doc);
          shots = rnd
            .sample(test, k + 1)
            .filter((x) => key(x) !== own)
            .slice(0, k);
        }
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
