/**
 * The context/continuation split of lm-evaluation-harness (`_encode_pair` in `lm_eval/api/model.py`):
 * trailing whitespace of the context moves to the front of the continuation, then
 *   whole = encode(context + continuation), ctx = encode(context), continuation = whole[len(ctx):].
 * Encoding the whole string (rather than the continuation alone) gives the continuation the tokens it has
 * in running text, e.g. " yes" after "Answer:" is `▁yes`, not `▁▁yes`.
 */
import { HippoError } from "@hippocrates/core";

export interface EncodedPair {
  context: number[];
  continuation: number[];
}

/**
 * The characters Python's `str.isspace()` accepts (what `rstrip()` removes). JS `\s` differs: it has U+FEFF
 * and lacks U+001C-U+001F and U+0085, so the class is spelled out. All are single UTF-16 code units.
 */
const PY_WHITESPACE = new Set([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002,
  0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

/** Splits the context's trailing whitespace off, as the harness does with `len(context) - len(context.rstrip())`. */
export function moveTrailingWhitespace(context: string, continuation: string): [string, string] {
  // A backwards scan rather than a `\s+$` regex, which is quadratic on long inner runs of whitespace.
  let end = context.length;
  while (end > 0 && PY_WHITESPACE.has(context.charCodeAt(end - 1))) end--;
  const stripped = context.slice(0, end);
  const n = context.length - end;
  if (n === 0) return [context, continuation];
  return [stripped, context.slice(stripped.length) + continuation];
}

export async function encodePairWith(
  encode: (text: string) => Promise<number[]>,
  context: string,
  continuation: string,
): Promise<EncodedPair> {
  if (typeof context !== "string" || typeof continuation !== "string") {
    throw new HippoError("INVALID_ARGUMENT", "context and continuation must be strings", {
      expected: "string, string",
      got: `${typeof context}, ${typeof continuation}`,
    });
  }
  if (continuation.length === 0) {
    throw new HippoError("INVALID_ARGUMENT", "the continuation is empty: there is nothing to score", {
      key: "continuation",
      expected: "a non-empty string",
      got: '""',
    });
  }
  const [ctx, cont] = moveTrailingWhitespace(context, continuation);
  const whole = await encode(ctx + cont);
  const ctxIds = await encode(ctx);
  return { context: ctxIds, continuation: whole.slice(ctxIds.length) };
}
