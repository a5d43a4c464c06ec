/**
 * The release check: what a user gets from npm, tried as a user would.
 *
 * In a throw-away copy of the working tree (tracked and untracked, non-ignored files; a git repository of its
 * own, so nothing here touches this checkout's history), `changeset version` bumps the versions, then
 * `pnpm pack` builds (prepack) and packs every package under packages/ that is not private, and
 * `pnpm publish -r --dry-run` runs. The tarballs are installed with npm into a fresh project outside the
 * workspace (their dependencies from the npm registry, through npm's cache), where the checks below run with
 * plain `node`. A failing command fails its test with the command's output.
 *
 * HIPPO_RELEASE_KEEP=1 keeps the temporary folder (its path is printed) for a look after a failure.
 */
import { type SpawnSyncOptions, spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** The shared data beside the repository (../shared/data), as every package's tests find it. */
const SHARED_DATA = resolve(ROOT, "..", "shared", "data");
/** Files the consumer project runs (score.mjs) and type-checks (consumer.ts), copied into it. */
const CONSUMER_FILES = fileURLToPath(new URL("../consumer/", import.meta.url));
const REPOSITORY = "https://github.com/hippocrates-ts/hippocrates.ts";

interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  license?: string;
  bin?: string | Record<string, string>;
  main?: string;
  types?: string;
  exports?: unknown;
  repository?: { type?: string; url?: string; directory?: string } | string;
  homepage?: string;
  bugs?: { url?: string } | string;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

const readManifest = (dir: string): Manifest =>
  JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as Manifest;

/** Every package under packages/ that is not private: what `changeset publish` publishes. */
function publishedPackages(root: string): { dir: string; manifest: Manifest }[] {
  return readdirSync(join(root, "packages"))
    .map((d) => `packages/${d}`)
    .filter((dir) => existsSync(join(root, dir, "package.json")))
    .map((dir) => ({ dir, manifest: readManifest(join(root, dir)) }))
    .filter((p) => p.manifest.private !== true);
}

// The commands run as a user's would: without the settings that the `npm test` -> pnpm -> turbo -> vitest
// chain puts in the environment (npm_config_local_prefix and the like would reach the consumer's
// `npm install`), but with the user's own registry and proxy settings (NPM_CONFIG_REGISTRY, HTTPS_PROXY...).
const KEEP =
  /^(NPM_CONFIG_|npm_config_(registry|@[^:]+:registry|https?[-_]proxy|proxy|no[-_]?proxy|strict[-_]ssl|cafile)$)/;
const DROP = /^(npm_|pnpm_|VITEST|INIT_CWD$|NODE_ENV$|NODE_OPTIONS$)/i;
const cleanEnv = (): NodeJS.ProcessEnv =>
  Object.fromEntries(Object.entries(process.env).filter(([k]) => KEEP.test(k) || !DROP.test(k)));

const tail = (text: string, n = 12_000) => (text.length > n ? `...\n${text.slice(-n)}` : text);

/** Runs a command; a non-zero exit throws with the command, its folder and the end of its output. */
function run(command: string, args: string[], cwd: string, options: SpawnSyncOptions = {}): string {
  const r = spawnSync(command, args, {
    cwd,
    env: cleanEnv(),
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
    timeout: 600_000,
    ...options,
  });
  const output = `${r.stdout ?? ""}${r.stderr ? `\n[stderr]\n${r.stderr}` : ""}`;
  if (r.status !== 0) {
    const why = r.error ? `failed: ${r.error.message}` : `exited with ${r.status ?? r.signal}`;
    throw new Error(`\`${[command, ...args].join(" ")}\` (in ${cwd}) ${why}\n${tail(output)}`);
  }
  return output;
}

const pnpm = (args: string[], cwd: string) =>
  run(process.execPath, [join(cwd, "scripts", "pnpm.mjs"), ...args], cwd, {
    env: { ...cleanEnv(), TURBO_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1" },
  });

/** Files of the working tree as git sees them: tracked (where not deleted) and untracked, not ignored. */
function copyWorkingTree(from: string, to: string): void {
  const list = run("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], from);
  for (const file of new Set(list.split("\0").filter(Boolean))) {
    const src = join(from, file);
    if (!existsSync(src) || !statSync(src).isFile()) continue;
    mkdirSync(dirname(join(to, file)), { recursive: true });
    copyFileSync(src, join(to, file));
  }
}

/** Entry points a package's manifest exports ("." and subpaths; not patterns or package.json). */
function entryPoints(m: Manifest): string[] {
  if (m.exports === undefined) return m.main ? [m.name] : [];
  if (typeof m.exports === "string" || !Object.keys(m.exports as object).some((k) => k.startsWith(".")))
    return [m.name];
  return Object.keys(m.exports as object)
    .filter((k) => !k.includes("*") && k !== "./package.json")
    .map((k) => (k === "." ? m.name : `${m.name}/${k.slice(2)}`));
}

/** Every file path a manifest points to (exports targets, main, types, bin). */
function manifestTargets(m: Manifest): string[] {
  const out: string[] = [];
  const walk = (v: unknown) => {
    if (typeof v === "string") out.push(v);
    else if (v && typeof v === "object") for (const x of Object.values(v)) walk(x);
  };
  walk(m.exports);
  walk(m.bin);
  if (m.main) out.push(m.main);
  if (m.types) out.push(m.types);
  return out;
}

/** Relative link targets of a markdown file (inline links and images; not URLs, anchors or mailto). */
function relativeLinks(markdown: string): string[] {
  const out: string[] = [];
  for (const match of markdown.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
    const target = match[1] ?? "";
    if (/^([a-z][a-z0-9+.-]*:|#)/i.test(target)) continue;
    out.push(target);
  }
  return out;
}

let work = "";
let repo = "";
let consumer = "";
let tarballs = "";
const stage: {
  packages: { dir: string; manifest: Manifest }[];
  before: Record<string, string>;
  bumped: Set<string>;
  versionOutput: string;
} = { packages: [], before: {}, bumped: new Set(), versionOutput: "" };
const consumerRun = (command: string, args: string[]) => run(command, args, consumer);

/** Runs one preparation step and prints its wall time (where the check's minutes go, in CI's log). */
function step<T>(name: string, fn: () => T): T {
  const t0 = performance.now();
  const out = fn();
  console.log(`release check: ${name} ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return out;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "hippo-release-"));
  if (!relative(ROOT, work).startsWith("..")) throw new Error(`${work} is inside the workspace ${ROOT}`);
  if (process.env.HIPPO_RELEASE_KEEP) console.log(`release check folder: ${work}`);
  repo = join(work, "repo");
  tarballs = join(work, "tarballs");
  consumer = join(work, "consumer");

  // 1. A throw-away repository: the working tree's files, committed, with its own node_modules.
  step("copy of the working tree", () => copyWorkingTree(ROOT, repo));
  run("git", ["init", "-q"], repo);
  run("git", ["add", "-A"], repo);
  run(
    "git",
    [
      "-c",
      "user.name=release-check",
      "-c",
      "user.email=release-check@localhost",
      "commit",
      "-qm",
      "snapshot",
    ],
    repo,
  );
  step("pnpm install (copy)", () =>
    pnpm(["install", "--frozen-lockfile", "--prefer-offline", "--reporter=append-only"], repo),
  );

  // 2. Version as a release would (changesets consume .changeset/*.md, bump versions, write CHANGELOG.md).
  stage.packages = publishedPackages(repo);
  if (stage.packages.length === 0) throw new Error("no published package found under packages/");
  stage.before = Object.fromEntries(stage.packages.map((p) => [p.manifest.name, p.manifest.version]));
  for (const f of readdirSync(join(repo, ".changeset")).filter(
    (f) => f.endsWith(".md") && f !== "README.md",
  )) {
    const front = readFileSync(join(repo, ".changeset", f), "utf8").split(/^---$/m)[1] ?? "";
    for (const m of front.matchAll(/^\s*["']?([^"':\s]+)["']?\s*:/gm)) stage.bumped.add(m[1] ?? "");
  }
  stage.versionOutput = step("changeset version", () => pnpm(["exec", "changeset", "version"], repo));
  stage.packages = publishedPackages(repo);

  // 3. Build (each package's prepack) and pack every published package.
  const filters = stage.packages.map((p) => `--filter=${p.manifest.name}`);
  step("build and pack", () => pnpm(["-r", ...filters, "pack", "--pack-destination", tarballs], repo));

  // 4. A fresh project outside the workspace that installs the tarballs with npm. `overrides` make the
  // packages' dependencies on each other resolve to the tarballs too, never to the registry.
  const files: Record<string, string> = {};
  for (const t of readdirSync(tarballs).filter((f) => f.endsWith(".tgz"))) {
    const m = JSON.parse(
      run("tar", ["-xzOf", join(tarballs, t), "package/package.json"], tarballs),
    ) as Manifest;
    files[m.name] = `file:${join(tarballs, t)}`;
  }
  const missing = stage.packages.filter((p) => !files[p.manifest.name]).map((p) => p.manifest.name);
  if (missing.length > 0) throw new Error(`no tarball for ${missing.join(", ")}`);
  const rootDev = readManifest(ROOT) as Manifest & { devDependencies: Record<string, string> };
  mkdirSync(consumer, { recursive: true });
  writeFileSync(
    join(consumer, "package.json"),
    `${JSON.stringify(
      {
        name: "hippo-release-consumer",
        private: true,
        type: "module",
        dependencies: {
          ...files,
          typescript: rootDev.devDependencies.typescript,
          "@types/node": rootDev.devDependencies["@types/node"],
        },
        overrides: files,
      },
      null,
      2,
    )}\n`,
  );
  step("npm install (consumer)", () =>
    consumerRun("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"]),
  );
});

afterAll(() => {
  if (work && !process.env.HIPPO_RELEASE_KEEP) rmSync(work, { recursive: true, force: true });
});

describe("versioning", () => {
  it("bumps every package a changeset names and writes its CHANGELOG.md", () => {
    const left = readdirSync(join(repo, ".changeset")).filter((f) => f.endsWith(".md") && f !== "README.md");
    expect(left, stage.versionOutput).toEqual([]);
    for (const { dir, manifest } of stage.packages) {
      if (!stage.bumped.has(manifest.name)) continue;
      expect(manifest.version, `${manifest.name}`).not.toBe(stage.before[manifest.name]);
      expect(readFileSync(join(repo, dir, "CHANGELOG.md"), "utf8")).toContain(`## ${manifest.version}`);
    }
  });

  it("publishes every package in a dry run", () => {
    const out = pnpm(["publish", "-r", "--dry-run", "--no-git-checks", "--ignore-scripts"], repo);
    for (const { manifest } of stage.packages) expect(out).toContain(`${manifest.name}@${manifest.version}`);
  });
});

describe("the packed packages", () => {
  it("point every export, type and bin at a file in the tarball, with no workspace: dependencies", () => {
    for (const { manifest } of stage.packages) {
      const dir = join(consumer, "node_modules", manifest.name);
      const installed = readManifest(dir);
      const targets = manifestTargets(installed);
      expect(targets.length, `${manifest.name} exports nothing`).toBeGreaterThan(0);
      for (const target of targets) {
        expect(existsSync(join(dir, target)), `${manifest.name}: ${target} is not in the tarball`).toBe(true);
        expect(target, `${manifest.name}: ${target} is TypeScript source`).not.toMatch(
          /(^|\/)src\/|(?<!\.d)\.ts$/,
        );
      }
      const deps = {
        ...installed.dependencies,
        ...installed.peerDependencies,
        ...installed.optionalDependencies,
      };
      for (const [name, spec] of Object.entries(deps))
        expect(spec, `${manifest.name} -> ${name}`).not.toMatch(/^workspace:/);
    }
  });

  it("carry the Apache-2.0 LICENSE and repository, homepage and bugs", () => {
    for (const { dir: folder, manifest } of stage.packages) {
      const dir = join(consumer, "node_modules", manifest.name);
      const m = readManifest(dir);
      expect(m.license, manifest.name).toBe("Apache-2.0");
      const license = existsSync(join(dir, "LICENSE")) ? readFileSync(join(dir, "LICENSE"), "utf8") : "";
      expect(license, `${manifest.name}: LICENSE`).toContain("Apache License");
      expect(license, `${manifest.name}: LICENSE is the full text`).toContain("END OF TERMS AND CONDITIONS");
      expect(m.repository, manifest.name).toEqual({
        type: "git",
        url: `git+${REPOSITORY}.git`,
        directory: folder,
      });
      expect(m.homepage, manifest.name).toMatch(new RegExp(`^${REPOSITORY}`));
      expect(m.bugs, manifest.name).toEqual({ url: `${REPOSITORY}/issues` });
    }
    expect(readFileSync(join(ROOT, "LICENSE"), "utf8")).toContain("END OF TERMS AND CONDITIONS");
  });

  it("have README links that resolve on npm (absolute URLs, or files in the package)", () => {
    const broken: string[] = [];
    for (const { manifest } of stage.packages) {
      const dir = join(consumer, "node_modules", manifest.name);
      const readme = readFileSync(join(dir, "README.md"), "utf8");
      for (const link of relativeLinks(readme)) {
        const file = decodeURIComponent(link.split("#")[0] ?? "");
        const target = resolve(dir, file);
        if (!target.startsWith(dir) || !existsSync(target)) broken.push(`${manifest.name}: ${link}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it("install without a TypeScript runner or bundler", () => {
    const present = ["tsx", "esbuild", "typescript-runner", "ts-node"].filter((p) =>
      existsSync(join(consumer, "node_modules", p)),
    );
    expect(present).toEqual([]);
  });
});

describe("with plain node, outside the workspace", () => {
  it("imports every entry point of every package", () => {
    const specs = stage.packages.flatMap((p) =>
      entryPoints(readManifest(join(consumer, "node_modules", p.manifest.name))),
    );
    const script = `const specs = ${JSON.stringify(specs)};
const out = {};
for (const s of specs) out[s] = Object.keys(await import(s)).length;
console.log(JSON.stringify(out));\n`;
    writeFileSync(join(consumer, "import-all.mjs"), script);
    const lines = consumerRun(process.execPath, ["import-all.mjs"]).trim().split("\n");
    const counts = JSON.parse(lines.at(-1) ?? "{}") as Record<string, number>;
    for (const s of specs) expect(counts[s], `${s} exports nothing`).toBeGreaterThan(0);
  });

  it("runs `npx hippo --help`", () => {
    // --no-install: a missing bin must fail here, not fetch some other `hippo` from the registry.
    const out = consumerRun("npx", ["--no-install", "hippo", "--help"]);
    expect(out).toContain("Usage: hippo");
    expect(out).toContain("miniature");
  });

  it("runs `hippo miniature` (shortened: 6 diseases, one epoch per training stage)", () => {
    // --prepare-only writes the shipped pipeline (pipelines/miniature.yaml) and model config; the shortened
    // copy of that pipeline then runs through the same command, report included.
    consumerRun("npx", ["--no-install", "hippo", "miniature", "--prepare-only", "--out", "mini-full"]);
    const pipeline = parseYaml(readFileSync(join(consumer, "mini-full", "pipeline.yaml"), "utf8")) as {
      stages: Record<string, unknown>[];
    };
    for (const s of pipeline.stages) if ("epochs" in s) s.epochs = 1;
    writeFileSync(join(consumer, "short.yaml"), stringifyYaml(pipeline));
    const out = consumerRun("npx", [
      "--no-install",
      "hippo",
      "miniature",
      "--out",
      "mini",
      "--diseases",
      "6",
      "--pipeline",
      "short.yaml",
      "--no-progress",
    ]);
    expect(out).toContain("HTML report:");
    expect(existsSync(join(consumer, "mini", "run", "report.html"))).toBe(true);
  });

  it("scores a request from a plain .mjs script (backend, tokenizer, model, eval)", () => {
    copyFileSync(join(CONSUMER_FILES, "score.mjs"), join(consumer, "score.mjs"));
    const lines = consumerRun(process.execPath, ["score.mjs", SHARED_DATA]).trim().split("\n");
    const out = JSON.parse(lines.at(-1) ?? "{}") as {
      request: { continuationTokens: number; logprob: number };
      medqa_usmle: Record<string, unknown>;
      samples: number;
    };
    expect(out.request.continuationTokens).toBeGreaterThan(0);
    expect(Number.isFinite(out.request.logprob) && out.request.logprob < 0, JSON.stringify(out)).toBe(true);
    expect(out.samples).toBe(2);
    const acc = Object.entries(out.medqa_usmle).find(([k]) => /^acc(,|$)/.test(k))?.[1];
    expect(typeof acc === "number" && acc >= 0 && acc <= 1, JSON.stringify(out)).toBe(true);
  });

  it("type-checks a strict TypeScript consumer of every package's public types", () => {
    const specs = stage.packages.flatMap((p) =>
      entryPoints(readManifest(join(consumer, "node_modules", p.manifest.name))),
    );
    // Every entry point must come with declarations: under `strict`, importing an untyped module is an error.
    const all = specs.map((s, i) => `import * as m${i} from "${s}";`).join("\n");
    writeFileSync(
      join(consumer, "all-packages.ts"),
      `${all}\n\nexport const modules = [${specs.map((_, i) => `m${i}`).join(", ")}] as const;\n`,
    );
    copyFileSync(join(CONSUMER_FILES, "consumer.ts"), join(consumer, "consumer.ts"));
    writeFileSync(
      join(consumer, "tsconfig.json"),
      `${JSON.stringify(
        {
          compilerOptions: {
            target: "ES2022",
            lib: ["ES2023"],
            module: "NodeNext",
            moduleResolution: "NodeNext",
            strict: true,
            noUncheckedIndexedAccess: true,
            noEmit: true,
            skipLibCheck: false,
            types: ["node"],
          },
          files: ["all-packages.ts", "consumer.ts"],
        },
        null,
        2,
      )}\n`,
    );
    // skipLibCheck is off so that our own .d.ts files are checked too; errors in third-party declarations
    // (tfjs-core's and @webgpu/types' need the DOM lib, which a Node project does not load) are not ours.
    const tsc = spawnSync(
      process.execPath,
      [join(consumer, "node_modules", "typescript", "bin", "tsc"), "-p", "."],
      {
        cwd: consumer,
        encoding: "utf8",
        env: cleanEnv(),
      },
    );
    const output = `${tsc.stdout}${tsc.stderr}`;
    const errors = output.split("\n").filter((l) => /^\S.*\(\d+,\d+\): error TS/.test(l));
    const ours = errors.filter(
      (l) => !l.startsWith("node_modules/") || l.startsWith("node_modules/@hippocrates/"),
    );
    expect(ours, output).toEqual([]);
    expect(tsc.status === 0 || errors.length > 0, `tsc failed without a diagnostic:\n${output}`).toBe(true);
  });
});
