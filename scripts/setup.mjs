// Installs the workspace from the lockfile (pnpm pinned in package.json), so `npm test`, `npm start` and
// `npm run hippo` work on a fresh clone. Skipped when node_modules is already newer than the lockfile.
// pnpm's output goes to stderr: stdout stays the command's own (`npm run hippo -- eval ... > results.json`).
import { spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const marker = join(root, "node_modules", ".modules.yaml");
const lock = join(root, "pnpm-lock.yaml");
if (
  existsSync(marker) &&
  statSync(marker).mtimeMs >= statSync(lock).mtimeMs &&
  !process.env.HIPPO_FORCE_INSTALL
) {
  process.exit(0);
}
const args = [join(root, "scripts", "pnpm.mjs"), "install", "--frozen-lockfile", "--reporter=append-only"];
const result = spawnSync(process.execPath, args, {
  cwd: root,
  stdio: ["inherit", process.stderr, "inherit"],
});
process.exit(result.status ?? 1);
