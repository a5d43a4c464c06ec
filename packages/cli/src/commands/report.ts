import { join, resolve } from "node:path";
import { writeFileAtomic } from "@hippocrates/core";
import type { Command } from "commander";
import { collectReport } from "../report/collect.js";
import { renderHtmlReport } from "../report/html.js";
import { formatReportTable } from "../report/table.js";

export function registerReport(program: Command): void {
  program
    .command("report")
    .description(
      "print a run's per-stage accuracy beside the paper's numbers, and write a self-contained HTML report",
    )
    .argument("<run-dir>", "run folder (the one holding manifest.json)")
    .option("--html <file>", "where to write the HTML report (default: <run-dir>/report.html)")
    .option("--no-html", "terminal table only")
    .option(
      "--max-samples <n>",
      "samples embedded in the HTML sample browser (the page says how many it left out)",
      "5000",
    )
    .addHelpText("after", "\nExample:\n  hippo report runs/miniature/run --html /tmp/report.html\n")
    .action(async (runDir: string, opts: { html: string | boolean; maxSamples: string }) => {
      const data = await collectReport(resolve(runDir), { maxSamples: Number(opts.maxSamples) || 5000 });
      process.stdout.write(`${formatReportTable(data)}\n`);
      if (opts.html !== false) {
        const file =
          typeof opts.html === "string" ? resolve(opts.html) : join(resolve(runDir), "report.html");
        await writeFileAtomic(file, renderHtmlReport(data));
        process.stdout.write(`\nHTML report: ${file}\n`);
      }
    });
}
