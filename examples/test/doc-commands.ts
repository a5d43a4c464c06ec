/**
 * The shell commands of the project's Markdown pages, as a reader copies them: every ```sh / ```bash /
 * ```shell block, split into commands. A command is one line, or several joined by a trailing `\` or by a
 * here-document (`cat > f.yaml <<'EOF'` ... `EOF`); comment-only lines and blank lines are not commands.
 *
 * A command that cannot run on a fresh clone of the repository carries a mark as its last comment, where the
 * reader sees it, and is not run by the docs test:
 *
 *   npm install @hippocrates/cli          # needs internet
 *   vllm serve runs/x/model --port 8000   # needs GPU: vLLM
 *   npm test                              # long: ~10 min on 2 cores (and it runs the docs test)
 *   npx changeset                         # interactive: asks which packages changed
 *
 * `needs internet` and `needs GPU` say what is missing here; `long` is for commands that are long by design
 * (a whole test suite, a benchmark run, a server that runs until stopped), each with a shorter documented
 * form nearby where one exists; `interactive` for commands that wait for a person.
 */

import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

/**
 * The pages whose commands and snippets are checked, relative to the repository root: the root README,
 * docs/*.md, every package's README (found by reading the folders, so a new package is covered),
 * examples/README.md and release/README.md.
 */
export function docPages(root: string): string[] {
  const md = (dir: string) =>
    existsSync(join(root, dir))
      ? readdirSync(join(root, dir))
          .filter((f) => f.endsWith(".md"))
          .sort()
          .map((f) => `${dir}/${f}`)
      : [];
  const readmes = readdirSync(join(root, "packages"))
    .sort()
    .map((p) => `packages/${p}/README.md`);
  return ["README.md", ...md("docs"), ...readmes, "examples/README.md", "release/README.md"].filter((f) =>
    existsSync(join(root, f)),
  );
}

export const MARKS = ["needs internet", "needs GPU", "long", "interactive"] as const;
export type Mark = (typeof MARKS)[number];

export interface DocCommand {
  /** Page, relative to the repository root. */
  file: string;
  /** 1-based line of the command's first line in the page. */
  line: number;
  /** The command as written (lines joined with "\n", continuations and here-document bodies included). */
  text: string;
  /** Why it is not run, when it carries a mark. */
  mark?: { kind: Mark; note: string };
}

const SHELL = new Set(["sh", "bash", "shell", "zsh"]);
// The last comment of a line: `#` after whitespace (not in `a#b`), then a mark, then optional `: why`.
const MARK = /(?:^|\s)#\s*(needs internet|needs GPU|long|interactive)\b([^#]*)$/;
const HEREDOC = /<<-?\s*(['"]?)([A-Za-z_][A-Za-z0-9_]*)\1/;

/** The fenced blocks of a page with the given info strings: each line with its 1-based line number. */
export function fencedBlocks(markdown: string, languages = SHELL): { line: number; text: string }[][] {
  const blocks: { line: number; text: string }[][] = [];
  const lines = markdown.split("\n");
  let open: { fence: string; indent: number; lines: { line: number; text: string }[] | undefined } | null =
    null;
  lines.forEach((raw, i) => {
    const fence = /^( {0,3})(`{3,}|~{3,})\s*([^\s`]*)/.exec(raw);
    if (open === null) {
      if (fence) {
        const lang = (fence[3] ?? "").toLowerCase();
        open = {
          fence: fence[2] as string,
          indent: (fence[1] as string).length,
          lines: languages.has(lang) ? [] : undefined,
        };
      }
      return;
    }
    const close = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(raw);
    if (
      close &&
      (close[1] as string)[0] === open.fence[0] &&
      (close[1] as string).length >= open.fence.length
    ) {
      if (open.lines) blocks.push(open.lines);
      open = null;
      return;
    }
    // Content lines lose up to the fence's indentation (a block inside a list item).
    const strip = Math.min(open.indent, raw.length - raw.trimStart().length);
    open.lines?.push({ line: i + 1, text: raw.slice(strip) });
  });
  return blocks;
}

/** The commands of one page. */
export function extractCommands(markdown: string, file: string): DocCommand[] {
  const out: DocCommand[] = [];
  for (const block of fencedBlocks(markdown)) {
    let i = 0;
    while (i < block.length) {
      const first = block[i] as { line: number; text: string };
      const trimmed = first.text.trim();
      if (trimmed === "" || trimmed.startsWith("#")) {
        i += 1;
        continue;
      }
      const parts = [first.text];
      let j = i;
      // A trailing backslash continues the command on the next line.
      while (/\\\s*$/.test(block[j]?.text ?? "") && j + 1 < block.length) {
        j += 1;
        parts.push((block[j] as { text: string }).text);
      }
      const commandLines = parts.length;
      // A here-document runs to its delimiter line.
      const here = HEREDOC.exec(parts.join("\n"));
      if (here) {
        const end = here[2] as string;
        while (j + 1 < block.length) {
          j += 1;
          const t = (block[j] as { text: string }).text;
          parts.push(t);
          if (t.trim() === end) break;
        }
      }
      const text = parts.join("\n");
      const command: DocCommand = { file, line: first.line, text };
      for (const part of parts.slice(0, commandLines)) {
        const m = MARK.exec(part);
        if (m) command.mark = { kind: m[1] as Mark, note: (m[2] ?? "").replace(/^\s*:?\s*/, "").trim() };
      }
      out.push(command);
      i = j + 1;
    }
  }
  return out;
}

/**
 * A TypeScript block of a page, for type-checking. The HTML comment right above its fence (invisible on GitHub
 * and npm) may give what the snippet assumes, as TypeScript declarations, or say why it is not checked:
 *
 *   <!-- typecheck: import type { CausalLM } from "@hippocrates/model"; declare const model: CausalLM; -->
 *   <!-- typecheck: skip, imports the reader's own ./stages/my-sft.js -->
 */
export interface DocSnippet {
  file: string;
  /** 1-based line of the snippet's first code line. */
  line: number;
  code: string;
  /** Declarations the snippet assumes (free names such as `model`), from its typecheck comment. */
  context: string;
  /** Why it is not type-checked, when its comment says `skip`. */
  skip?: string;
}

export function extractSnippets(markdown: string, file: string): DocSnippet[] {
  const lines = markdown.split("\n");
  return fencedBlocks(markdown, new Set(["ts", "typescript"]))
    .filter((block) => block.length > 0)
    .map((block) => {
      const fenceLine = (block[0] as { line: number }).line - 1; // 1-based line of the fence itself
      // The comment ends on the line above the fence (blank lines between are allowed).
      let end = fenceLine - 2;
      while (end >= 0 && (lines[end] ?? "").trim() === "") end -= 1;
      let comment = "";
      if ((lines[end] ?? "").trim().endsWith("-->")) {
        let start = end;
        while (start >= 0 && !(lines[start] ?? "").includes("<!--")) start -= 1;
        comment = lines
          .slice(start, end + 1)
          .join("\n")
          .replace(/^[\s\S]*?<!--/, "")
          .replace(/-->\s*$/, "")
          .trim();
      }
      const snippet: DocSnippet = {
        file,
        line: (block[0] as { line: number }).line,
        code: block.map((l) => l.text).join("\n"),
        context: "",
      };
      const directive = /^typecheck:\s*([\s\S]*)$/.exec(comment);
      if (directive) {
        const body = (directive[1] as string).trim();
        const skip = /^skip\b[,:]?\s*([\s\S]*)$/.exec(body);
        if (skip) snippet.skip = (skip[1] as string).trim() || "no reason given";
        else snippet.context = body;
      }
      return snippet;
    });
}
