// Runs the pnpm version pinned in package.json's "packageManager" through npx, so a machine with only
// Node and npm needs nothing installed by hand.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pm = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).packageManager;
const result = spawnSync("npx", ["--yes", pm, ...process.argv.slice(2)], {
  cwd: process.cwd(),
  stdio: "inherit",
  env: { TURBO_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1", ...process.env },
});
process.exit(result.status ?? 1);
