/**
 * "Hippo in miniature": a seeded generator of a small fictional medical knowledge base. Every disease, drug,
 * finding and pathogen is an invented word, so no model can know the facts beforehand: whatever the test
 * measures was learnt from this text.
 *
 * From one KB it writes what the real pipeline consumes:
 * - CPT text: textbook-like paragraphs stating every fact in several phrasings (the "guidelines corpus");
 * - SFT instructions: multiple-choice questions in the exam format with the answer (the "MedQA-train" set);
 * - preference pairs: the same kind of question, the right answer chosen over a wrong one (the DPO set);
 * - a held-out multiple-choice test with 4 options. Each test question asks for a fact in a phrasing that the
 *   SFT set never uses for that fact, with its own distractors and option order, so the test items themselves
 *   never appear in training (the knowledge does: in the CPT text, and in other phrasings in SFT).
 */
import type {
  InstructionRecord,
  MultipleChoiceItem,
  PreferenceRecord,
  Rng,
  TextDocument,
} from "@hippocrates/core";
import { createRng } from "@hippocrates/core";

export type Relation = "drug" | "finding" | "organ" | "pathogen";
export const RELATIONS: readonly Relation[] = ["drug", "finding", "organ", "pathogen"];

export interface Disease {
  name: string;
  drug: string;
  finding: string;
  organ: string;
  pathogen: string;
}

export interface KnowledgeBase {
  seed: number;
  diseases: Disease[];
  /** Every entity of each relation (the distractor pools). */
  pools: Record<Relation, string[]>;
}

export interface KbOptions {
  seed?: number;
  /** Number of invented diseases (default 40). */
  diseases?: number;
}

// Syllables for invented names. Suffixes carry the category, as real nomenclature does (-itis, -mab, -bacter).
const ONSETS = [
  "b",
  "d",
  "f",
  "g",
  "k",
  "l",
  "m",
  "n",
  "p",
  "r",
  "s",
  "t",
  "v",
  "z",
  "br",
  "dr",
  "gr",
  "kl",
  "pr",
  "tr",
  "st",
  "sk",
];
const VOWELS = ["a", "e", "i", "o", "u", "ai", "eo", "ou"];
const CODAS = ["", "", "l", "n", "r", "s", "x", "th"];
const SUFFIX: Record<Exclude<Relation, "organ"> | "disease", string[]> = {
  disease: ["itis", "osis", "emia", "algia", "opathy"],
  drug: ["mab", "zole", "pril", "cillin", "vir", "statin"],
  finding: ["rash", "tremor", "cough", "spots", "fever"],
  pathogen: ["bacter", "coccus", "virus", "myces"],
};
const ORGANS = [
  "liver",
  "kidney",
  "lung",
  "heart",
  "spleen",
  "pancreas",
  "skin",
  "brain",
  "stomach",
  "thyroid",
];

function syllable(rng: Rng): string {
  return `${ONSETS[rng.int(ONSETS.length)]}${VOWELS[rng.int(VOWELS.length)]}${CODAS[rng.int(CODAS.length)]}`;
}

function inventName(rng: Rng, suffixes: string[], used: Set<string>, spaced: boolean): string {
  for (;;) {
    const stem = syllable(rng) + (rng.next() < 0.5 ? syllable(rng) : "");
    const suffix = suffixes[rng.int(suffixes.length)] as string;
    // Findings are two words ("velth rash"), like real signs; the rest are one word.
    const name = spaced ? `${stem} ${suffix}` : `${stem}${suffix}`;
    if (!used.has(name) && !ORGANS.includes(name)) {
      used.add(name);
      return name;
    }
  }
}

export function generateKnowledgeBase(options: KbOptions = {}): KnowledgeBase {
  const seed = options.seed ?? 1234;
  const n = options.diseases ?? 40;
  const rng = createRng(seed);
  const used = new Set<string>();
  const diseases: Disease[] = [];
  for (let i = 0; i < n; i++) {
    diseases.push({
      name: inventName(rng, SUFFIX.disease, used, false),
      drug: inventName(rng, SUFFIX.drug, used, false),
      finding: inventName(rng, SUFFIX.finding, used, true),
      organ: ORGANS[rng.int(ORGANS.length)] as string,
      pathogen: inventName(rng, SUFFIX.pathogen, used, false),
    });
  }
  const pools = {
    drug: diseases.map((d) => d.drug),
    finding: diseases.map((d) => d.finding),
    organ: [...ORGANS],
    pathogen: diseases.map((d) => d.pathogen),
  };
  return { seed, diseases, pools };
}

// --------------------------------------------------------------------------------------------------------
// Phrasings. Statements feed the CPT text; questions feed SFT, DPO and the test.

const STATEMENTS: Record<Relation, ((d: Disease) => string)[]> = {
  drug: [
    (d) => `${d.name} is treated with ${d.drug}.`,
    (d) => `The first-line drug for ${d.name} is ${d.drug}.`,
    (d) => `Patients with ${d.name} receive ${d.drug}.`,
    (d) => `${d.drug} is the standard therapy for ${d.name}.`,
  ],
  finding: [
    (d) => `${d.name} presents with ${d.finding}.`,
    (d) => `The hallmark sign of ${d.name} is ${d.finding}.`,
    (d) => `Patients with ${d.name} typically show ${d.finding}.`,
    (d) => `${d.finding} is the classic finding in ${d.name}.`,
  ],
  organ: [
    (d) => `${d.name} affects the ${d.organ}.`,
    (d) => `${d.name} is a disease of the ${d.organ}.`,
    (d) => `In ${d.name} the ${d.organ} is damaged.`,
    (d) => `The organ involved in ${d.name} is the ${d.organ}.`,
  ],
  pathogen: [
    (d) => `${d.name} is caused by ${d.pathogen}.`,
    (d) => `The agent of ${d.name} is ${d.pathogen}.`,
    (d) => `Infection with ${d.pathogen} leads to ${d.name}.`,
    (d) => `${d.pathogen} is the cause of ${d.name}.`,
  ],
};

/** Question phrasings per relation. Index QUESTIONS[r].length - 1 is never used in SFT for the test facts. */
const QUESTIONS: Record<Relation, ((d: Disease) => string)[]> = {
  drug: [
    (d) => `Which drug is used to treat ${d.name}?`,
    (d) => `What is the first-line treatment for ${d.name}?`,
    (d) => `A patient is diagnosed with ${d.name}. Which medication should be given?`,
    (d) => `Which therapy is standard for a patient with ${d.name}?`,
  ],
  finding: [
    (d) => `Which finding is typical of ${d.name}?`,
    (d) => `What is the hallmark sign of ${d.name}?`,
    (d) => `A patient has ${d.name}. Which sign is most likely present?`,
    (d) => `Which classic finding suggests ${d.name}?`,
  ],
  organ: [
    (d) => `Which organ does ${d.name} affect?`,
    (d) => `${d.name} is a disease of which organ?`,
    (d) => `In a patient with ${d.name}, which organ is damaged?`,
    (d) => `Which organ is involved in ${d.name}?`,
  ],
  pathogen: [
    (d) => `Which organism causes ${d.name}?`,
    (d) => `What is the agent of ${d.name}?`,
    (d) => `A patient has ${d.name}. Infection with which organism is the cause?`,
    (d) => `Which pathogen is responsible for ${d.name}?`,
  ],
};

const LETTERS = ["A", "B", "C", "D"];

/** The exam prompt, as the eval package's medqa-style tasks write it: `Question: q\n(A) a (B) b ...\nAnswer:`. */
export function mcPrompt(question: string, options: string[]): string {
  return `Question: ${question}\n${options.map((o, i) => `(${LETTERS[i]}) ${o}`).join(" ")}\nAnswer:`;
}

function mcOptions(rng: Rng, pool: string[], answer: string): { options: string[]; gold: number } {
  const others = rng.shuffle(pool.filter((x) => x !== answer)).slice(0, 3);
  const options = rng.shuffle([answer, ...others]);
  return { options, gold: options.indexOf(answer) };
}

export interface MiniatureDatasets {
  cpt: TextDocument[];
  sft: InstructionRecord[];
  dpo: PreferenceRecord[];
  test: MultipleChoiceItem[];
}

export interface DatasetOptions {
  /** Paragraphs per disease in the CPT text (default 6). */
  paragraphs?: number;
  /** SFT questions per (fact, training phrasing), each with fresh distractors (default 2). */
  sftRepeats?: number;
  /** Preference pairs per fact (default 1; at most one per training phrasing). */
  dpoPerFact?: number;
}

/** Build the four datasets from a KB. Deterministic for the KB's seed. */
export function buildDatasets(kb: KnowledgeBase, options: DatasetOptions = {}): MiniatureDatasets {
  const rng = createRng(kb.seed + 1);
  const paragraphs = options.paragraphs ?? 6;
  const repeats = options.sftRepeats ?? 2;
  const dpoPerFact = options.dpoPerFact ?? 1;
  const cpt: TextDocument[] = [];
  const sft: InstructionRecord[] = [];
  const dpo: PreferenceRecord[] = [];
  const test: MultipleChoiceItem[] = [];

  kb.diseases.forEach((d, di) => {
    for (let p = 0; p < paragraphs; p++) {
      const sentences = RELATIONS.map((r) => {
        const forms = STATEMENTS[r];
        return (forms[rng.int(forms.length)] as (d: Disease) => string)(d);
      });
      cpt.push({ id: `kb-${di}-${p}`, source: "miniature-textbook", text: rng.shuffle(sentences).join(" ") });
    }
    for (const r of RELATIONS) {
      const answer = d[r];
      const forms = QUESTIONS[r];
      // One phrasing per fact is held out for the test; which one rotates with the disease.
      const heldOut = (di + RELATIONS.indexOf(r)) % forms.length;
      let pairs = 0;
      forms.forEach((form, qi) => {
        const question = form(d);
        if (qi === heldOut) {
          const { options: opts, gold } = mcOptions(rng, kb.pools[r], answer);
          test.push({
            id: `test-${di}-${r}`,
            question,
            options: opts,
            gold,
            meta: { disease: d.name, relation: r },
          });
          return;
        }
        for (let k = 0; k < repeats; k++) {
          const { options: opts, gold } = mcOptions(rng, kb.pools[r], answer);
          const prompt = mcPrompt(question, opts);
          sft.push({
            id: `sft-${di}-${r}-${qi}-${k}`,
            source: "miniature-exam",
            messages: [
              { role: "user", content: prompt },
              { role: "assistant", content: answer },
            ],
          });
          if (k === 0 && pairs < dpoPerFact) {
            pairs += 1;
            const wrong = opts[(gold + 1 + rng.int(3)) % 4] as string;
            dpo.push({
              id: `dpo-${di}-${r}-${qi}`,
              source: "miniature-exam",
              prompt,
              chosen: answer,
              rejected: wrong,
            });
          }
        }
      });
    }
  });
  return { cpt: rng.shuffle(cpt), sft: rng.shuffle(sft), dpo: rng.shuffle(dpo), test };
}

/** Every string the tokenizer must cover (for building its vocabulary). */
export function allText(data: MiniatureDatasets): string[] {
  return [
    ...data.cpt.map((d) => d.text),
    ...data.sft.flatMap((r) => r.messages.map((m) => m.content)),
    ...data.dpo.flatMap((p) => [p.prompt, p.chosen, p.rejected]),
    ...data.test.flatMap((t) => [mcPrompt(t.question, t.options), ...t.options]),
  ];
}
