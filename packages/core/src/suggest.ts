/**
 * "Did you mean ...?" for unknown keys, flags and names: a misspelt `learning_rat` should point at
 * `learning_rate`, not only say "unknown key".
 */

/** Levenshtein distance (insertions, deletions, substitutions), case-insensitive. */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  let prev = Array.from({ length: t.length + 1 }, (_, j) => j);
  for (let i = 1; i <= s.length; i++) {
    const cur = [i];
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] as number) + 1, (cur[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
    }
    prev = cur;
  }
  return prev[t.length] as number;
}

/**
 * The closest candidate to `name`, if it is close enough to be a likely typo: within a third of the name's
 * length in edits (at least 1, at most 3), or the same apart from `-`/`_` and case (`learning-rate`).
 */
export function closestMatch(name: string, candidates: Iterable<string>): string | undefined {
  const norm = (x: string) => x.toLowerCase().replace(/[-_]/g, "");
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    if (norm(c) === norm(name)) return c;
    const d = editDistance(name, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  const limit = Math.min(3, Math.max(1, Math.floor(name.length / 3)));
  return bestDistance <= limit ? best : undefined;
}

/** `unknown key "learning_rat"; did you mean "learning_rate"?` (or without the suggestion). */
export function unknownNameMessage(what: string, name: string, candidates: Iterable<string>): string {
  const match = closestMatch(name, candidates);
  return `unknown ${what} ${JSON.stringify(name)}${match ? `; did you mean ${JSON.stringify(match)}?` : ""}`;
}

/**
 * The `error` option of a strict settings object (zod 4's `z.strictObject(shape, { error })`, or any schema
 * library that reports unrecognized keys as `{ code: "unrecognized_keys", keys }`): one "did you mean" message
 * per unknown key, other issues left to the library's default message.
 */
export function unknownKeysError(
  known: Iterable<string>,
): (issue: { code?: string; keys?: readonly string[] }) => string | undefined {
  const candidates = [...known];
  return (issue) =>
    issue.code === "unrecognized_keys" && issue.keys?.length
      ? issue.keys.map((k) => unknownNameMessage("key", k, candidates)).join("; ")
      : undefined;
}
