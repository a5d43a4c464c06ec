/**
 * acc and acc_norm as lm-evaluation-harness computes them (`MultipleChoiceTask.process_results`):
 *   acc      = argmax(loglik) == gold
 *   acc_norm = argmax(loglik / len(choice)) == gold, len in characters of the choice without the delimiter
 * argmax as numpy's: the first maximum wins, and a NaN wins over everything (numpy propagates NaN).
 * Standard error: sample standard deviation (n - 1) / sqrt(n) (`metrics.mean_stderr`); for a group, the
 * current harness's pooled standard error over the member tasks, the mean weighted by size.
 */

export function argmax(values: readonly number[]): number {
  let best = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    if (Number.isNaN(v)) return i;
    if (v > (values[best] as number)) best = i;
  }
  return best;
}

/** Python's len(): code points, not UTF-16 units. */
export function pyLen(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

export interface DocScores {
  acc: number;
  acc_norm: number;
}

export function scoreDoc(logliks: readonly number[], choices: readonly string[], gold: number): DocScores {
  const acc = argmax(logliks) === gold ? 1 : 0;
  const norm = logliks.map((ll, i) => ll / pyLen(choices[i] as string));
  return { acc, acc_norm: argmax(norm) === gold ? 1 : 0 };
}

export function mean(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** Sample standard deviation / sqrt(n); NaN for fewer than two values (Python would divide by zero). */
export function meanStderr(xs: readonly number[]): number {
  const n = xs.length;
  if (n < 2) return Number.NaN;
  const mu = mean(xs);
  let ss = 0;
  for (const x of xs) ss += (x - mu) ** 2;
  return Math.sqrt(ss / (n - 1)) / Math.sqrt(n);
}

/** `pooled_sample_stderr` of the current harness (pooled variance of the members; ignores differences between their means). */
export function pooledStderr(stderrs: readonly number[], sizes: readonly number[]): number {
  let num = 0;
  let total = 0;
  for (let i = 0; i < sizes.length; i++) {
    const n = sizes[i] as number;
    num += (n - 1) * (stderrs[i] as number) ** 2 * n;
    total += n;
  }
  return Math.sqrt(num / (total - sizes.length) / total);
}
