import { describe, expect, it } from "vitest";
import { formatReport, PUBLISHED_RESULTS, type ResultsJson } from "../src/index.js";

const results = (acc: Record<string, number>): ResultsJson => ({
  results: Object.fromEntries(
    Object.entries(acc).map(([t, a]) => [t, { alias: t, "acc,none": a, "acc_norm,none": a / 2 }]),
  ),
  group_subtasks: {},
  configs: {},
  versions: {},
  "n-shot": {},
  higher_is_better: {},
  "n-samples": {},
  config: {},
  git_hash: null,
  date: 0,
});

describe("report table", () => {
  it("prints our rows beside the published ones, with the six-column average", () => {
    const all = results({
      medmcqa: 0.5,
      medqa_usmle: 0.4,
      pubmedqa: 0.7,
      usmle_step1: 0.3,
      usmle_step2: 0.2,
      usmle_step3: 0.1,
    });
    const text = formatReport(
      [
        { label: "run A", results: all },
        { label: "run B", results: results({ pubmedqa: 0.745 }) },
      ],
      { shots: 5 },
    );
    const lines = text.split("\n");
    expect(lines[0]).toBe(
      "| model (5-shot, acc %) | MedMCQA | MedQA | PubMedQA | USMLE-1 | USMLE-2 | USMLE-3 | avg |",
    );
    expect(lines[2]).toBe("| run A (ours) | 50.0 | 40.0 | 70.0 | 30.0 | 20.0 | 10.0 | 36.7 |");
    expect(lines[3]).toBe("| run B (ours) | — | — | 74.5 | — | — | — | — |");
    expect(lines[4]).toBe("| Hippo-λ 7B (published) | 53.9 | 50.8 | 76.6 | 40.4 | 39.5 | 43.4 | 50.8 |");
    expect(text).toContain("| BioMistral 7B (published) | 42.4 | 42.1 | 75.1 | 28.7 | 34.9 | 44.3 | — |");
    expect(
      formatReport([{ label: "a", results: all }], { shots: 0, metric: "acc_norm" }).split("\n")[2],
    ).toBe("| a (ours) | 25.0 | 20.0 | 35.0 | 15.0 | 10.0 | 5.0 | 18.3 |");
  });

  it("the published table's averages are the means of its six columns (checks the transcription)", () => {
    for (const r of PUBLISHED_RESULTS) {
      const zero = [
        r.scores.medmcqa,
        r.scores.medqa_usmle,
        r.scores.pubmedqa,
        r.scores.usmle_step1,
        r.scores.usmle_step2,
        r.scores.usmle_step3,
      ].map((s) => s[0]);
      expect(Math.abs(zero.reduce((a, b) => a + b, 0) / 6 - r.scores.avg[0])).toBeLessThan(0.11);
    }
  });
});
