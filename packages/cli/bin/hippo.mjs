#!/usr/bin/env node
// `hippo` without a build step: register tsx's ESM loader, then run the TypeScript entry point.
import { register } from "tsx/esm/api";

register();
await import("../src/bin.ts");
