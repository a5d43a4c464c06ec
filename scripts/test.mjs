// `npm test`: install from the lockfile, then lint, type-check and test every package (one at a time, so a
// 2-core CI machine is not oversubscribed), and print one closing line that sums every vitest run.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const run = (args) => spawnSync(process.execPath, args, { cwd: root, stdio: "inherit" }).status ?? 1;

if (run([join(root, "scripts", "setup.mjs")]) !== 0) process.exit(1);

const projects = [
  ...readdirSync(join(root, "packages")).map((p) => join(root, "packages", p)),
  join(root, "examples"),
  join(root, "release"),
];
const resultFile = (dir) => join(dir, "test-results.json");
for (const dir of projects) rmSync(resultFile(dir), { force: true });

// vitest runs test files in parallel processes, each with its own WebAssembly backend; XNNPACK's threads
// spin while waiting, so two threads per process on a 2-core machine make everything slower. One thread per
// process unless the caller says otherwise (the backend's own tests start 2-thread children explicitly).
process.env.HIPPO_THREADS ??= "1";

const status = run([
  join(root, "scripts", "pnpm.mjs"),
  "exec",
  "turbo",
  "run",
  "lint",
  "typecheck",
  "test",
  "--concurrency=1",
  "--output-logs=new-only",
  "--continue",
  ...process.argv.slice(2),
]);

let passed = 0;
let failed = 0;
let skipped = 0;
const missing = [];
// CI shows only the end of the log: repeat each failure (test name and the first lines of its message) here.
const failures = [];
const firstLines = (text) => {
  const lines = String(text).split("\n");
  const message = lines.filter((l) => !/^\s*at /.test(l)).slice(0, 4);
  const frame = lines.find((l) => /^\s*at /.test(l) && !l.includes("node_modules"));
  return [...message, ...(frame ? [frame.trim()] : [])].join("\n    ");
};
for (const dir of projects) {
  if (!existsSync(join(dir, "vitest.config.ts"))) continue;
  if (!existsSync(resultFile(dir))) {
    missing.push(dir.slice(root.length + 1));
    continue;
  }
  const r = JSON.parse(readFileSync(resultFile(dir), "utf8"));
  passed += r.numPassedTests;
  failed += r.numFailedTests;
  skipped += r.numPendingTests + r.numTodoTests;
  const where = dir.slice(root.length + 1);
  for (const file of r.testResults ?? []) {
    const name = `${where}/${String(file.name).split(`${where}/`).at(-1)}`;
    const failedTests = (file.assertionResults ?? []).filter((t) => t.status === "failed");
    for (const t of failedTests)
      failures.push(`${name} > ${t.fullName}\n    ${firstLines(t.failureMessages?.[0] ?? "")}`);
    // A file that fails before its tests run (an import error, a failing hook) has no failed test in it.
    if (file.status === "failed" && failedTests.length === 0)
      failures.push(`${name}\n    ${firstLines(file.message ?? "")}`);
  }
}
if (failures.length > 0) console.log(`\nFailed:\n${failures.map((f) => `  ${f}`).join("\n")}\n`);
if (missing.length > 0) console.log(`no test results from: ${missing.join(", ")}`);
console.log(`Tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
// With --filter arguments some packages do not run; without them, a package with no results is a failure.
const filtered = process.argv.length > 2;
process.exit(status !== 0 || (missing.length > 0 && !filtered) ? 1 : 0);
