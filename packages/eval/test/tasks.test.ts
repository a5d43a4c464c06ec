import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  buildContexts,
  createTaskRegistry,
  MMLU_MEDICAL_SUBJECTS,
  type Profile,
  PyRandom,
} from "../src/index.js";
import { DATA_DIR, pythonRandom, rawJsonl } from "./helpers.js";

const reg = createTaskRegistry();
const v03 = (name: string) => reg.get(name, "v0.3");
const cur = (name: string) => reg.get(name, "current");

/** The first `limit` requests of a task, 0-shot, in its profile's document order. */
async function firstRequests(name: string, profile: Profile, limit = 2) {
  const task = reg.get(name, profile);
  return buildContexts(task, await task.load(DATA_DIR), { profile, numFewshot: 0, limit });
}

/** The first N of Python's random.Random(42).shuffle(range(n)), from this JS port (checked against CPython). */
function pyOrder(n: number): number[] {
  const r = new PyRandom(42);
  const x = Array.from({ length: n }, (_, i) => i);
  r.shuffle(x);
  return x;
}

describe("item counts", () => {
  it.each([
    ["medmcqa", 4183],
    ["medqa_usmle", 1273],
    ["medqa_usmle_5options", 1273],
    ["pubmedqa", 1000],
    ["pubmedqa_test500", 500],
  ])("%s has %i items", async (name, n) => {
    expect((await v03(name).load(DATA_DIR)).test).toHaveLength(n);
  });

  it("MMLU medical: 135/265/144/173/100/272 = 1,089 test items, 5 dev items each", async () => {
    const counts: number[] = [];
    for (const s of MMLU_MEDICAL_SUBJECTS) {
      const d = await cur(`mmlu_${s}`).load(DATA_DIR);
      counts.push(d.test.length);
      expect(d.dev).toHaveLength(5);
    }
    expect(counts).toEqual([135, 265, 144, 173, 100, 272]);
    expect(counts.reduce((a, b) => a + b)).toBe(1089);
  });
});

describe("v0.3 document order is Python's shuffle with seed 42", () => {
  it("medqa_usmle order matches the CPython fixture", async () => {
    const task = v03("medqa_usmle");
    const built = buildContexts(task, await task.load(DATA_DIR), { profile: "v0.3", numFewshot: 0 });
    expect(built.map((b) => b.docIndex)).toEqual(pythonRandom.shuffle_1273);
  });
});

describe("first two requests of each task, character for character", () => {
  it("medqa_usmle (literal string of the first request)", async () => {
    const [a, b] = await firstRequests("medqa_usmle", "v0.3");
    console.log("medqa_usmle request 1:", JSON.stringify(a?.context), JSON.stringify(a?.continuations));
    console.log("medqa_usmle request 2:", JSON.stringify(b?.context), JSON.stringify(b?.continuations));
    expect(a?.docIndex).toBe(990);
    expect(a?.context).toBe(
      "Question: A 3-week-old newborn is brought to the physician by his parents because of poor feeding, irritability, and frequent vomiting over the past week. The vomitus is greenish in color and smells strange. His parents have tried to feed him every 4 hours, but the patient often spits up or refuses to eat. The patient was born at term and had his first bowel movement at 50 hours of life. He has since had one bowel movement daily. He is at the 50th percentile for length, 10th percentile for weight, and 40th percentile for head circumference. He does not appear to be in acute distress. His temperature is 36.9°C (98.4°F), pulse is 140/min, respirations are 40/min, and blood pressure is 90/60 mm Hg. Physical examination shows that the patient has small, low-set ears, a broad and flat nasal bridge, and a large space between the first and second toes bilaterally. The abdomen is distended. When the finger is removed following a rectal exam, there is an explosive release of stool from the patient's rectum. An x-ray of the abdomen shows a section of dilated colon followed by a segment of colon without stool or air. Which of the following is most likely to confirm the diagnosis?\n(A) CT scan of the abdomen (B) Transabdominal ultrasonography (C) Anorectal manometry (D) Rectal suction biopsy\nAnswer:",
    );
    expect(a?.continuations).toEqual([
      " CT scan of the abdomen",
      " Transabdominal ultrasonography",
      " Anorectal manometry",
      " Rectal suction biopsy",
    ]);
    const raw = rawJsonl("benchmarks/medqa/medqa_us_4options_test.jsonl")[202] as {
      question: string;
      options: Record<string, string>;
      answer_idx: string;
    };
    expect(b?.docIndex).toBe(202);
    const o = raw.options;
    expect(b?.context).toBe(
      `Question: ${raw.question}\n(A) ${o.A} (B) ${o.B} (C) ${o.C} (D) ${o.D}\nAnswer:`,
    );
    expect(b?.gold).toBe(raw.answer_idx.charCodeAt(0) - 65);
  });

  it("medqa_usmle_5options", async () => {
    const built = await firstRequests("medqa_usmle_5options", "v0.3");
    const rows = rawJsonl("benchmarks/medqa/medqa_us_5options_test.jsonl") as {
      question: string;
      options: Record<string, string>;
    }[];
    for (const [i, idx] of [990, 202].entries()) {
      const r = rows[idx] as { question: string; options: Record<string, string> };
      const o = r.options;
      console.log(`medqa_usmle_5options request ${i + 1}:`, JSON.stringify(built[i]?.context));
      expect(built[i]?.context).toBe(
        `Question: ${r.question}\n(A) ${o.A} (B) ${o.B} (C) ${o.C} (D) ${o.D} (E) ${o.E}\nAnswer:`,
      );
      expect(built[i]?.continuations).toEqual([` ${o.A}`, ` ${o.B}`, ` ${o.C}`, ` ${o.D}`, ` ${o.E}`]);
    }
  });

  it("medmcqa: option text is the choice without its 'A. ' prefix", async () => {
    const built = await firstRequests("medmcqa", "v0.3");
    const rows = rawJsonl("benchmarks/medmcqa/medmcqa_validation_4183.jsonl") as {
      question: string;
      choices: string[];
      answer: number;
    }[];
    expect(built.map((b) => b.docIndex)).toEqual(pyOrder(4183).slice(0, 2));
    for (const [i, b] of built.entries()) {
      const r = rows[b.docIndex] as { question: string; choices: string[]; answer: number };
      const t = r.choices.map((c) => c.slice(3));
      console.log(`medmcqa request ${i + 1}:`, JSON.stringify(b.context), JSON.stringify(b.continuations));
      expect(b.context).toBe(
        `Question: ${r.question}\n(A) ${t[0]} (B) ${t[1]} (C) ${t[2]} (D) ${t[3]}\nAnswer:`,
      );
      expect(b.continuations).toEqual(t.map((x) => ` ${x}`));
      expect(b.gold).toBe(r.answer);
    }
  });

  it("pubmedqa: all 1,000 rows in the file's key order, shuffled", async () => {
    const built = await firstRequests("pubmedqa", "v0.3");
    // File key order (Python's json.load keeps it): the ids as they appear in the text.
    const text = readFileSync(`${DATA_DIR}benchmarks/pubmedqa/ori_pqal.json`, "utf8");
    const ids = [...text.matchAll(/^ {4}"(\d+)": \{/gm)].map((m) => m[1]);
    expect(ids).toHaveLength(1000);
    const all = JSON.parse(text) as Record<
      string,
      { QUESTION: string; CONTEXTS: string[]; final_decision: string }
    >;
    expect(built.map((b) => b.docIndex)).toEqual([776, 507]);
    for (const [i, b] of built.entries()) {
      const id = ids[b.docIndex] as string;
      const r = all[id] as { QUESTION: string; CONTEXTS: string[]; final_decision: string };
      console.log(`pubmedqa request ${i + 1}:`, JSON.stringify(b.context), JSON.stringify(b.continuations));
      expect(b.doc.id).toBe(id);
      expect(b.context).toBe(`Abstract: ${r.CONTEXTS.join("\n")}\nQuestion: ${r.QUESTION}\nAnswer:`);
      expect(b.continuations).toEqual([" yes", " no", " maybe"]);
      expect(b.gold).toBe(["yes", "no", "maybe"].indexOf(r.final_decision));
    }
  });

  it("pubmedqa_test500: the official ids in test_ground_truth.json order", async () => {
    const task = v03("pubmedqa_test500");
    const data = await task.load(DATA_DIR);
    const text = readFileSync(`${DATA_DIR}benchmarks/pubmedqa/test_ground_truth.json`, "utf8");
    const ids = [...text.matchAll(/"(\d+)":/g)].map((m) => m[1]);
    expect(data.test.map((d) => d.id)).toEqual(ids);
    const built = buildContexts(task, data, { profile: "v0.3", numFewshot: 0, limit: 2 });
    expect(built.map((b) => b.docIndex)).toEqual(pyOrder(500).slice(0, 2));
    for (const b of built) {
      console.log("pubmedqa_test500 request:", JSON.stringify(b.context.slice(0, 120)), "...");
      expect(b.context.startsWith("Abstract: ")).toBe(true);
      expect(b.context.endsWith(`\nQuestion: ${b.doc.question}\nAnswer:`)).toBe(true);
    }
  });

  it("MMLU (current harness): description, stripped question, lettered options, letters as choices", async () => {
    for (const s of MMLU_MEDICAL_SUBJECTS) {
      const built = await firstRequests(`mmlu_${s}`, "current");
      const csv = readFileSync(`${DATA_DIR}benchmarks/mmlu_medical/test/${s}_test.csv`, "utf8");
      for (const [i, b] of built.entries()) {
        expect(b.docIndex).toBe(i);
        const o = b.doc.options;
        const subject = s.replaceAll("_", " ");
        if (s === "anatomy")
          console.log(
            `mmlu_anatomy request ${i + 1}:`,
            JSON.stringify(b.context),
            JSON.stringify(b.continuations),
          );
        expect(b.context).toBe(
          `The following are multiple choice questions (with answers) about ${subject}.\n\n${b.doc.question.trim()}\nA. ${o[0]}\nB. ${o[1]}\nC. ${o[2]}\nD. ${o[3]}\nAnswer:`,
        );
        expect(b.continuations).toEqual([" A", " B", " C", " D"]);
        expect(csv.includes(o[0] as string)).toBe(true);
      }
    }
    // Literal check of anatomy's first request (test CSV row 1).
    const [first] = await firstRequests("mmlu_anatomy", "current", 1);
    expect(first?.context).toBe(
      "The following are multiple choice questions (with answers) about anatomy.\n\nA lesion causing compression of the facial nerve at the stylomastoid foramen will cause ipsilateral\nA. paralysis of the facial muscles.\nB. paralysis of the facial muscles and loss of taste.\nC. paralysis of the facial muscles, loss of taste and lacrimation.\nD. paralysis of the facial muscles, loss of taste, lacrimation and decreased salivation.\nAnswer:",
    );
    expect(first?.gold).toBe(0);
  });

  it("medqa_4options and medmcqa in the current profile", async () => {
    const [a] = await firstRequests("medqa_4options", "current");
    const r = rawJsonl("benchmarks/medqa/medqa_us_4options_test.jsonl")[0] as {
      question: string;
      options: Record<string, string>;
    };
    expect(a?.context).toBe(
      `Question: ${r.question}\nA. ${r.options.A}\nB. ${r.options.B}\nC. ${r.options.C}\nD. ${r.options.D}\nAnswer:`,
    );
    expect(a?.continuations).toEqual([" A", " B", " C", " D"]);
    const [m] = await firstRequests("medmcqa", "current");
    const q = rawJsonl("benchmarks/medmcqa/medmcqa_validation_4183.jsonl")[0] as {
      question: string;
      choices: string[];
    };
    expect(m?.context).toBe(
      `Question: ${q.question}\nChoices:\n${q.choices.map((c) => `${c}\n`).join("")}Answer:`,
    );
  });
});

describe("5-shot draws", () => {
  it("pubmedqa v0.3: stable across runs, never the item itself, Python's sample(k+1) minus the doc", async () => {
    const task = v03("pubmedqa");
    const data = await task.load(DATA_DIR);
    const one = buildContexts(task, data, { profile: "v0.3", numFewshot: 5, limit: 50 });
    const two = buildContexts(task, data, { profile: "v0.3", numFewshot: 5, limit: 50 });
    expect(one.map((b) => b.context)).toEqual(two.map((b) => b.context));
    for (const b of one) {
      expect(b.shotIds).toHaveLength(5);
      expect(b.shotIds).not.toContain(b.doc.id);
      expect(b.context.split("\n\nAbstract: ")).toHaveLength(6);
    }
    // The stream as the harness consumes it, replayed with the indices only.
    const r = new PyRandom(42);
    const order = Array.from({ length: 1000 }, (_, i) => i);
    r.shuffle(order);
    const idx = Array.from({ length: 1000 }, (_, i) => i);
    for (let p = 0; p < 50; p++) {
      const draw = r
        .sample(idx, 6)
        .filter((i) => i !== order[p])
        .slice(0, 5);
      expect(one[p]?.shotIds).toEqual(draw.map((i) => data.test[i]?.id));
    }
    // The first context: five shots "Abstract...Answer: <gold>" joined by blank lines, then the prompt.
    const first = one[0];
    const shots = (first?.shotIds ?? []).map((id) => data.test.find((d) => d.id === id));
    const shotText = shots.map(
      (d) =>
        `Abstract: ${d?.contexts?.join("\n")}\nQuestion: ${d?.question}\nAnswer: ${["yes", "no", "maybe"][d?.gold ?? 0]}`,
    );
    expect(first?.context).toBe(
      `${shotText.join("\n\n")}\n\nAbstract: ${first?.doc.contexts?.join("\n")}\nQuestion: ${first?.doc.question}\nAnswer:`,
    );
  });

  it("MMLU current: the first 5 dev items, in order, for every document", async () => {
    const task = cur("mmlu_anatomy");
    const data = await task.load(DATA_DIR);
    const built = buildContexts(task, data, { profile: "current", numFewshot: 5, limit: 3 });
    for (const b of built) expect(b.shotIds).toEqual(["0", "1", "2", "3", "4"]);
    const dev0 = data.dev?.[0];
    expect(
      built[0]?.context.startsWith(
        `The following are multiple choice questions (with answers) about anatomy.\n\n${dev0?.question}\nA. `,
      ),
    ).toBe(true);
    expect(built[0]?.context.includes(`\nAnswer: ${"ABCD"[dev0?.gold ?? 0]}\n\n`)).toBe(true);
  });

  it("current profile: one few-shot stream per task, drawn in document order, so a document's shots do not depend on the limit", async () => {
    const task = cur("pubmedqa");
    const data = await task.load(DATA_DIR);
    const a = buildContexts(task, data, { profile: "current", numFewshot: 3, limit: 5 });
    const b = buildContexts(task, data, { profile: "current", numFewshot: 3, limit: 20 });
    expect(b.slice(0, 5).map((x) => x.shotIds)).toEqual(a.map((x) => x.shotIds));
    for (const x of b) expect(x.shotIds).not.toContain(x.doc.id);
  });

  it("medqa 5-shot without its training split is a clear error", async () => {
    const task = v03("medqa_usmle");
    const data = await task.load(DATA_DIR);
    expect(() => buildContexts(task, data, { profile: "v0.3", numFewshot: 5, limit: 2 })).toThrow(
      /medqa_us_4options_train\.jsonl: task medqa_usmle: 5-shot needs its training documents/,
    );
  });
});

describe("prompting variants (fork PR 1 texts)", () => {
  it("medqa_usmle_cot, medmcqa_cot (space after '.:'), *_sc (no newline before Options:), pubmedqa_vot", async () => {
    const doc = { id: "x", question: "Q?", options: ["a", "b", "c", "d"], gold: 0 };
    const cot = reg.get("medqa_usmle_cot", "v0.3").docToText(doc);
    expect(cot).toBe(
      "The following is a multiple choice question about medical knowledge. Solve it in a step-by-step fashion, starting by summarizing the available information. Output a single option from the four options as the final answer.:\nQ?\n(A) a (B) b (C) c (D) d\nOptions:\nA. a\nB. b\nC. c\nD. d\nAnswer:",
    );
    expect(reg.get("medmcqa_cot", "v0.3").docToText(doc)).toContain("as the final answer.: Q?\n(A) a");
    expect(reg.get("usmle_step2_sc", "v0.3").docToText(doc)).toMatch(
      /consistent answer\. Output a single option from the four options as the final answer\.\nQ\?\n\(A\) a \(B\) b \(C\) c \(D\) dOptions:\nA\. a\n/,
    );
    const p = {
      id: "1",
      question: "Does it?",
      options: ["yes", "no", "maybe"],
      gold: 0,
      contexts: ["c1", "c2"],
    };
    expect(reg.get("pubmedqa_vot", "v0.3").docToText(p)).toBe(
      "Abstract: c1\nc2\nThe following is a multiple choice question about medical knowledge. Verify the accuracy of the provided answer by comparing it against the given options and summarizing the reasoning step-by-step after creating premises.\nUse deductive verification to ensure each step is logically valid, based on the premises.\nOutput the verified option from the four options as the final answer.:\nDoes it?\nOptions: 'yes', 'no', 'maybe'\nAnswer:",
    );
  });
});

describe("v0.3 draws from training documents (medqa 5-shot)", () => {
  it("shots = rnd.sample(train, 5) from the stream that shuffled the test docs; joined as the harness", async () => {
    const dir = await mkdtemp(join(tmpdir(), "hippo-eval-train-"));
    try {
      await mkdir(join(dir, "benchmarks/medqa"), { recursive: true });
      await symlink(
        `${DATA_DIR}benchmarks/medqa/medqa_us_4options_test.jsonl`,
        join(dir, "benchmarks/medqa/medqa_us_4options_test.jsonl"),
      );
      const train = Array.from({ length: 40 }, (_, i) => ({
        question: `Train question ${i}?`,
        options: { A: `a${i}`, B: `b${i}`, C: `c${i}`, D: `d${i}` },
        answer_idx: "ABCD"[i % 4],
      }));
      await writeFile(
        join(dir, "benchmarks/medqa/medqa_us_4options_train.jsonl"),
        train.map((r) => JSON.stringify(r)).join("\n"),
      );
      const task = v03("medqa_usmle");
      const data = await task.load(dir);
      const built = buildContexts(task, data, { profile: "v0.3", numFewshot: 5, limit: 3 });
      const r = new PyRandom(42);
      r.shuffle(Array.from({ length: 1273 }, (_, i) => i));
      const idx = Array.from({ length: 40 }, (_, i) => i);
      for (const b of built) {
        const draw = r.sample(idx, 5);
        expect(b.shotIds).toEqual(draw.map(String));
        const shotText = draw.map(
          (i) =>
            `Question: Train question ${i}?\n(A) a${i} (B) b${i} (C) c${i} (D) d${i}\nAnswer: ${["a", "b", "c", "d"][i % 4]}${i}`,
        );
        const o = b.doc.options;
        expect(b.context).toBe(
          `${shotText.join("\n\n")}\n\nQuestion: ${b.doc.question}\n(A) ${o[0]} (B) ${o[1]} (C) ${o[2]} (D) ${o[3]}\nAnswer:`,
        );
      }
      expect(built.map((b) => b.docIndex)).toEqual([990, 202, pythonRandom.shuffle_1273[2]]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
