/**
 * Docs that run: every shell command in the root README, docs/*.md, each package's README and
 * examples/README.md runs as written on a fresh clone of the repository, with the project's shared data
 * beside it (`../shared`, a link to the real folder, as CI has it), the way a reader would paste it: from the
 * clone's root, with no `node_modules/.bin` on PATH, each page's commands in order (a command may use what an
 * earlier command of its page wrote). Between pages the clone goes back to its first state (`git checkout`,
 * `git clean`; its node_modules stay, as on a reader's machine after the README's set-up).
 *
 * The clone is `git clone` of this repository with the working tree's uncommitted changes laid over it and
 * committed in the clone, so the test checks the docs as they are on disk. Commands marked `# needs internet`,
 * `# needs GPU`, `# long` or `# interactive` (see doc-commands.ts) are skipped and counted. A failing command
 * fails its page's test with the page, line, command and the end of its output; every failure of the page is
 * listed, not only the first.
 *
 * HIPPO_DOCS_KEEP=1 keeps the clone (its path is printed) for a look after a failure; HIPPO_DOCS_PAGES=a.md,b.md
 * runs only those pages (while editing them).
 */
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DocCommand, docPages, extractCommands, extractSnippets, MARKS } from "./doc-commands.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SHARED = resolve(ROOT, "..", "shared");
/** Set in the commands' environment: a command that runs this test suite again skips this file. */
const GUARD = "HIPPO_DOCS_COMMANDS";
const nested = process.env[GUARD] === "1";

/** The pages to run (HIPPO_DOCS_PAGES narrows them while editing); `filtered: false` gives all. */
function pages(filtered = true): string[] {
  const only = filtered ? process.env.HIPPO_DOCS_PAGES?.split(",").map((f) => f.trim()) : undefined;
  return docPages(ROOT).filter((f) => !only || only.includes(f));
}

const tail = (text: string, n = 4000) => (text.length > n ? `...\n${text.slice(-n)}` : text);

/** Runs a command of the test's own (git); a failure throws with its output. */
function git(args: string[], cwd: string): string {
  const r = spawnSync("git", args, { cwd, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`git ${args.join(" ")} (in ${cwd}) failed:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/**
 * The environment of a reader's shell: without what `npm test` -> pnpm -> turbo -> vitest adds (npm_* and
 * pnpm settings, vitest's variables, node_modules/.bin folders on PATH, which would make a bare `tsx` or
 * `vitest` in a README work here and nowhere else), with a temporary folder of the run's own.
 */
function readerEnv(tmp: string): NodeJS.ProcessEnv {
  const drop = /^(npm_|pnpm_|VITEST|TURBO_|INIT_CWD$|NODE_ENV$|NODE_OPTIONS$|NODE_PATH$|TEST$)/i;
  const keep =
    /^(NPM_CONFIG_|npm_config_(registry|@[^:]+:registry|https?[-_]proxy|proxy|no[-_]?proxy|cafile)$)/;
  const env: NodeJS.ProcessEnv = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => keep.test(k) || !drop.test(k)),
  );
  env.PATH = (process.env.PATH ?? "")
    .split(delimiter)
    .filter((p) => p && !p.includes("node_modules") && !p.includes(".pnpm"))
    .join(delimiter);
  env.TMPDIR = tmp;
  env[GUARD] = "1";
  return env;
}

let work = "";
let clone = "";
let env: NodeJS.ProcessEnv = {};
const started = performance.now();
const counts = { run: 0, skipped: new Map<string, number>() };

/** Copies the working tree's changes against HEAD (modified, added, untracked; deletions) into the clone. */
function layWorkingTree(from: string, to: string): number {
  const changed = git(["diff", "--name-only", "-z", "--no-renames", "HEAD"], from)
    .split("\0")
    .filter(Boolean);
  const untracked = git(["ls-files", "-z", "--others", "--exclude-standard"], from)
    .split("\0")
    .filter(Boolean);
  let n = 0;
  for (const file of new Set([...changed, ...untracked])) {
    const src = join(from, file);
    const dst = join(to, file);
    if (existsSync(src) && statSync(src).isFile()) {
      mkdirSync(dirname(dst), { recursive: true });
      copyFileSync(src, dst);
    } else rmSync(dst, { force: true });
    n += 1;
  }
  return n;
}

beforeAll(() => {
  if (nested) return;
  if (!existsSync(join(SHARED, "data")))
    throw new Error(`the docs test needs the shared data folder beside the repository: ${SHARED}/data`);
  work = mkdtempSync(join(tmpdir(), "hippo-docs-"));
  if (!relative(ROOT, work).startsWith("..")) throw new Error(`${work} is inside the repository ${ROOT}`);
  clone = join(work, "repo");
  git(["clone", "-q", ROOT, clone], work);
  if (layWorkingTree(ROOT, clone) > 0) {
    git(["add", "-A"], clone);
    git(
      ["-c", "user.name=docs-test", "-c", "user.email=docs-test@localhost", "commit", "-qm", "working tree"],
      clone,
    );
  }
  symlinkSync(SHARED, join(work, "shared"));
  mkdirSync(join(work, "tmp"));
  env = readerEnv(join(work, "tmp"));
  if (process.env.HIPPO_DOCS_KEEP) console.log(`docs test clone: ${clone}`);
}, 300_000);

afterAll(() => {
  if (nested) return;
  const skipped = [...counts.skipped].map(([k, n]) => `${n} ${k}`).join(", ");
  console.log(
    `docs commands: ${counts.run} run, ${[...counts.skipped.values()].reduce((a, b) => a + b, 0)} skipped (${skipped || "none"}) in ${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
  if (work && !process.env.HIPPO_DOCS_KEEP) rmSync(work, { recursive: true, force: true });
});

/** Back to the clone's first state between pages; node_modules (the README's set-up) stays. */
function resetClone(): void {
  git(["checkout", "-q", "--", "."], clone);
  git(["clean", "-fdxq", "-e", "node_modules"], clone);
}

function runCommand(c: DocCommand): string | undefined {
  const t0 = performance.now();
  const r = spawnSync("bash", ["-c", `set -eo pipefail\n${c.text}`], {
    cwd: clone,
    env,
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
    timeout: 600_000,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(
    `  ${c.file}:${c.line} ${seconds} s ${r.status === 0 ? "ok" : "FAILED"}: ${c.text.split("\n")[0]}`,
  );
  if (r.status === 0) return undefined;
  const why = r.error ? r.error.message : `exit status ${r.status ?? r.signal}`;
  return `${c.file}:${c.line}: \`${c.text}\` failed (${why})\n${tail(`${r.stdout}${r.stderr ? `\n[stderr]\n${r.stderr}` : ""}`)}`;
}

describe.skipIf(nested)("the docs' shell commands run as written on a fresh clone", () => {
  for (const file of pages()) {
    const commands = extractCommands(readFileSync(join(ROOT, file), "utf8"), file);
    if (commands.length === 0) continue;
    const run = commands.filter((c) => !c.mark);
    const marked = commands.filter((c) => c.mark);
    it(`${file}: ${run.length} run, ${marked.length} marked (${marked.map((c) => `${c.line}: ${c.mark?.kind}`).join(", ") || "none"})`, {
      timeout: 1_800_000,
    }, () => {
      resetClone();
      const failures: string[] = [];
      for (const c of commands) {
        if (c.mark) {
          counts.skipped.set(c.mark.kind, (counts.skipped.get(c.mark.kind) ?? 0) + 1);
          continue;
        }
        counts.run += 1;
        const failure = runCommand(c);
        if (failure) failures.push(failure);
      }
      if (failures.length > 0)
        throw new Error(`${failures.length} command(s) failed:\n\n${failures.join("\n\n")}`);
    });
  }
});

describe("reading the docs' commands", () => {
  it("joins continuation lines and here-documents, skips comments, and reads the marks", () => {
    const page = [
      "# Title",
      "",
      "```sh",
      "# a comment line",
      "npm run hippo -- --help            # every subcommand has --help",
      "npm run hippo -- eval --model hf \\",
      "  --tasks medqa_usmle --limit 5     # needs GPU: 7B",
      "cat > cpt.yaml <<'EOF'",
      "outDir: data/cpt # long: not a mark inside the document",
      "EOF",
      "",
      "npm test   # lint, types, tests   # long: ~10 min",
      "npx changeset   # interactive",
      "echo a#b   # needs internet",
      "```",
      "",
      "```ts",
      "const x = 1; // not shell",
      "```",
      "",
      "- a list item:",
      "",
      "  ```bash",
      "  node scripts/pnpm.mjs install",
      "  ```",
    ].join("\n");
    const commands = extractCommands(page, "X.md");
    expect(commands.map((c) => [c.line, c.text, c.mark])).toEqual([
      [5, "npm run hippo -- --help            # every subcommand has --help", undefined],
      [
        6,
        "npm run hippo -- eval --model hf \\\n  --tasks medqa_usmle --limit 5     # needs GPU: 7B",
        { kind: "needs GPU", note: "7B" },
      ],
      [8, "cat > cpt.yaml <<'EOF'\noutDir: data/cpt # long: not a mark inside the document\nEOF", undefined],
      [12, "npm test   # lint, types, tests   # long: ~10 min", { kind: "long", note: "~10 min" }],
      [13, "npx changeset   # interactive", { kind: "interactive", note: "" }],
      [14, "echo a#b   # needs internet", { kind: "needs internet", note: "" }],
      [24, "node scripts/pnpm.mjs install", undefined],
    ]);
    expect(MARKS).toEqual(["needs internet", "needs GPU", "long", "interactive"]);
  });

  it("reads TypeScript snippets with the context or the reason to skip from the comment above them", () => {
    const page = [
      '<!-- typecheck: import type { CausalLM } from "@hippocrates/model";',
      "     declare const model: CausalLM; -->",
      "",
      "```ts",
      "model.dispose();",
      "```",
      "<!-- typecheck: skip, imports the reader's own file -->",
      "```typescript",
      'import { x } from "./mine.js";',
      "```",
      "```ts",
      "const y = 1;",
      "```",
    ].join("\n");
    expect(extractSnippets(page, "P.md")).toEqual([
      {
        file: "P.md",
        line: 5,
        code: "model.dispose();",
        context: 'import type { CausalLM } from "@hippocrates/model";\n     declare const model: CausalLM;',
      },
      {
        file: "P.md",
        line: 9,
        code: 'import { x } from "./mine.js";',
        context: "",
        skip: "imports the reader's own file",
      },
      { file: "P.md", line: 12, code: "const y = 1;", context: "" },
    ]);
  });

  it("finds shell blocks in every page it covers", () => {
    const all = pages(false).flatMap((f) => extractCommands(readFileSync(join(ROOT, f), "utf8"), f));
    expect(all.some((c) => c.file === "README.md")).toBe(true);
    expect(all.some((c) => c.file.startsWith("docs/"))).toBe(true);
    expect(all.some((c) => c.file === "packages/cli/README.md")).toBe(true);
    expect(all.some((c) => c.file === "examples/README.md")).toBe(true);
    // A command needs no runner that only a package folder has on PATH: pnpm, tsx, vitest, or a bare hippo.
    const bare = all.filter((c) => !c.mark && /(^|[;&|(]\s*|\n\s*)(pnpm|tsx|vitest|hippo)\s/.test(c.text));
    expect(bare.map((c) => `${c.file}:${c.line}`)).toEqual([]);
  });
});
