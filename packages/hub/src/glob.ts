/**
 * Glob matching as the `datasets` library resolves `data_files` patterns against a repository (fsspec >= 2023.12,
 * i.e. Python's glob): `*` and `?` stay within one path part, `[...]` / `[!...]` are character classes, and a
 * `**` part matches zero or more whole parts. Files or folders starting with `.` or `__` only match a pattern
 * that names such a part (datasets' `_is_unrequested_hidden_file_or_is_inside_unrequested_hidden_dir`).
 */

function partToRegex(part: string): RegExp {
  let re = "";
  for (let i = 0; i < part.length; i++) {
    const c = part[i] as string;
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const end = part.indexOf("]", i + 2);
      if (end < 0) re += "\\[";
      else {
        let body = part.slice(i + 1, end);
        const negate = body.startsWith("!");
        if (negate) body = body.slice(1);
        re += `[${negate ? "^" : ""}${body.replace(/\\/g, "\\\\").replace(/\^/g, "\\^")}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\\]]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

function matchParts(pattern: string[], path: string[], pi: number, si: number, cache: RegExp[]): boolean {
  if (pi === pattern.length) return si === path.length;
  if (pattern[pi] === "**") {
    for (let k = si; k <= path.length; k++) if (matchParts(pattern, path, pi + 1, k, cache)) return true;
    return false;
  }
  if (si === path.length) return false;
  cache[pi] ??= partToRegex(pattern[pi] as string);
  return (cache[pi] as RegExp).test(path[si] as string) && matchParts(pattern, path, pi + 1, si + 1, cache);
}

const hiddenParts = (parts: string[]) => parts.filter((p) => p.startsWith(".") && !/^\.+$/.test(p)).length;
const specialDirs = (parts: string[]) => parts.slice(0, -1).filter((p) => p.startsWith("__")).length;

/** Whether the repository path `path` matches the glob `pattern`. */
export function globMatch(pattern: string, path: string): boolean {
  const pp = pattern.replace(/^\.\//, "").split("/");
  const sp = path.split("/");
  if (!matchParts(pp, sp, 0, 0, [])) return false;
  return hiddenParts(sp) === hiddenParts(pp) && specialDirs(sp) === specialDirs(pp);
}

/**
 * Every path matching the patterns: pattern by pattern, each pattern's matches sorted (fsspec's glob sorts),
 * as `DataFilesList.from_patterns` concatenates them; a path matched twice is kept once.
 */
export function globFiles(patterns: string[], paths: Iterable<string>): string[] {
  const out = new Set<string>();
  const all = [...paths].sort();
  for (const pattern of patterns) for (const p of all) if (globMatch(pattern, p)) out.add(p);
  return [...out];
}
