#!/usr/bin/env node
/**
 * Entry point of `hippo`: the published package's bin is the compiled dist/bin.js; in the workspace,
 * bin/hippo.mjs runs this source through tsx.
 */
import { main } from "./main.js";

process.exitCode = await main(process.argv);
