/**
 * The `tokenizers` binding reports offsets in Unicode code points (Rust `char`s); JS strings index UTF-16
 * code units. They differ only after a character outside the BMP (emoji, some CJK), so the mapping table is
 * built only when the text has a surrogate pair.
 */
export function charToUtf16Offsets(text: string, offsets: number[][]): [number, number][] {
  if (!/[\uD800-\uDBFF]/.test(text)) return offsets.map((o) => [o[0] ?? 0, o[1] ?? 0]);
  // utf16At[c] = UTF-16 index of code point c; one extra entry for the end of the string.
  const utf16At: number[] = [];
  let i = 0;
  for (const ch of text) {
    utf16At.push(i);
    i += ch.length;
  }
  utf16At.push(i);
  const at = (c: number) => utf16At[Math.min(c, utf16At.length - 1)] ?? i;
  return offsets.map((o) => [at(o[0] ?? 0), at(o[1] ?? 0)]);
}
