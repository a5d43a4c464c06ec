// `build` and `prepack` of every published package: a clean dist/ (no files left from renamed or deleted
// modules, which a plain `tsc` would keep and `pnpm pack` would ship), compiled from src/ by
// tsconfig.build.json (JavaScript, .d.ts and source maps with the sources inlined, since src/ is not
// published). Runs in the package's folder.
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const cwd = process.cwd();
rmSync(join(cwd, "dist"), { recursive: true, force: true });
const tsc = createRequire(join(cwd, "package.json")).resolve("typescript/bin/tsc");
const result = spawnSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd, stdio: "inherit" });
process.exit(result.status ?? 1);
