/**
 * The miniature pipeline end to end on a cut-down config (real tokenizer, real random Llama, real trainers and
 * evaluation): killed with SIGKILL during CPT, run again, it skips the finished stage and resumes CPT from its
 * checkpoint, and runs the second branch (SFT on the base model); the report has the paper's five rows; then
 * its HTML report is opened in headless Chromium.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { readManifest } from "../src/pipeline/manifest.js";
import { HIPPO, makeTempDir, removeTempDir, runHippo } from "./helpers/cli.js";

const TINY = fileURLToPath(new URL("./fixtures/miniature-tiny.yaml", import.meta.url));
const FREEZE = fileURLToPath(new URL("./fixtures/freeze-on-rename.mjs", import.meta.url));
const CHROMIUM = "/usr/bin/chromium";
const SCREENSHOT_DIR = fileURLToPath(new URL("../.test-output/", import.meta.url));

if (!existsSync(CHROMIUM)) {
  console.warn(
    `HTML report test skipped: ${CHROMIUM} not found (install Debian's chromium: apt-get install -y chromium)`,
  );
}

let dir: string;
afterAll(() => removeTempDir(dir));

const args = () => ["miniature", "--out", dir, "--diseases", "6", "--pipeline", TINY, "--no-progress"];

describe("hippo miniature (tiny config)", () => {
  it("killed during CPT, a re-run skips finished stages and resumes CPT from its checkpoint", {
    timeout: 600_000,
  }, async () => {
    dir = await makeTempDir("mini");
    const cptDir = join(dir, "run", "02-cpt");
    // Kill the process outright once CPT has written checkpoint-2: a preloaded hook freezes it right after
    // CPT's `latest` pointer names checkpoint-2, so the kill lands there however loaded the machine is (a poll
    // of the folder could see CPT finish first).
    const child = spawn(process.execPath, ["--import", pathToFileURL(FREEZE).href, HIPPO, ...args()], {
      stdio: ["ignore", "pipe", "ignore"],
      env: {
        ...process.env,
        HIPPO_TEST_FREEZE_SUFFIX: join("run", "02-cpt", "latest"),
        HIPPO_TEST_FREEZE_CONTENT: "checkpoint-2",
      },
    });
    const exited = new Promise((r) => child.once("exit", r));
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d;
      if (out.includes("FROZEN\n")) child.kill("SIGKILL");
    });
    await exited;
    expect(out).toContain("FROZEN");
    expect(readdirSync(cptDir).filter((n) => /^checkpoint-\d+$/.test(n))).toEqual(["checkpoint-2"]);
    const killed = await readManifest(join(dir, "run"));
    expect(killed?.stages.map((s) => s.status).slice(0, 2)).toEqual(["done", "running"]);
    const baseFinished = killed?.stages[0]?.finishedAt;

    const r = await runHippo(process.cwd(), args());
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain("[eval-base] done in an earlier run: skipped");
    expect(r.stderr).toContain("[cpt] resuming interrupted stage");
    const done = await readManifest(join(dir, "run"));
    expect(done?.status).toBe("done");
    expect(done?.stages.every((s) => s.status === "done")).toBe(true);
    expect(done?.stages[0]?.finishedAt).toBe(baseFinished);
    expect(done?.stages[0]?.attempts).toBe(1);
    expect(done?.stages[1]?.attempts).toBe(2);
    // CPT continued from its checkpoint: its metrics log has each step once, 1..8.
    const steps = (await readFile(join(cptDir, "metrics.jsonl"), "utf8"))
      .trim()
      .split("\n")
      .map((l) => (JSON.parse(l) as { step: number }).step);
    expect(steps).toEqual(Array.from({ length: 8 }, (_, i) => i + 1));
    // The second branch took the base model, and the shared stages ran once.
    const sftBase = done?.stages.find((s) => s.id === "sft-base");
    expect(sftBase?.from).toBe("base");
    expect(sftBase?.input).toEqual({ kind: "hf-model", path: join(dir, "base-model") });
    expect(done?.stages.map((s) => s.attempts)).toEqual([1, 2, 1, 1, 1, 1, 1, 1, 1, 1]);
    // The report table lists every stage's accuracy beside the paper's rows, "+SFT" included, filled.
    for (const label of ["base", "+CPT", "+SFT", "+CPT+SFT", "+CPT+SFT+DPO"])
      expect(r.stdout).toMatch(new RegExp(`\\| ${label.replace(/\+/g, "\\+")} +\\| +\\d+\\.\\d \\|`));
    expect(r.stdout).toContain("Llama-2 7B (paper)");
  });

  it.skipIf(!existsSync(CHROMIUM))(
    "the HTML report renders in headless Chromium: the miniature caveat, training and DPO reward charts, sample paging and filters, screenshots",
    async () => {
      const html = join(dir, "run", "report.html");
      expect(existsSync(html)).toBe(true);
      const { chromium } = await import("playwright-core");
      const profile = await makeTempDir("chromium");
      // A fresh profile (playwright passes it as --user-data-dir) and the flags of a quiet, offline browser.
      const context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        viewport: { width: 1200, height: 1600 },
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
        ],
      });
      try {
        const page = await context.newPage();
        const requests: string[] = [];
        page.on("request", (req) => requests.push(req.url()));
        await page.goto(`file://${html}`);
        // Beside the paper's 7B numbers, above the accuracy table: what the miniature's numbers are.
        const caveat = (await page.textContent("#caveat")) ?? "";
        expect(caveat).toContain("This is the miniature, a demonstration: not a medical result.");
        expect(caveat).toMatch(/\d+K-parameter random llama \(hidden 128, 2 layers\)/);
        expect(caveat).toContain("an invented knowledge base (6 fictional diseases");
        expect(caveat).toContain("24 held-out questions");
        expect(caveat).toContain("for the per-stage trend only");
        const order = await page.$$eval("#caveat, #accuracy", (els) => els.map((e) => e.id));
        expect(order).toEqual(["caveat", "accuracy"]);
        // Charts: one loss curve per training stage with its points, and bars with values.
        const lossSeries = await page.$$eval(
          '#training-charts svg[data-metric="loss"] polyline.series[data-series="train loss"]',
          (els) => els.map((e) => Number(e.getAttribute("data-points"))),
        );
        expect(lossSeries.length).toBe(4);
        expect(Math.max(...lossSeries)).toBeGreaterThan(1);
        const lrSeries = await page.$$eval(
          '#training-charts svg[data-metric="learning_rate"] polyline.series',
          (els) => els.map((e) => Number(e.getAttribute("data-points"))),
        );
        expect(lrSeries).toEqual(lossSeries);
        // DPO (2 steps here): implicit rewards of chosen and rejected, their margin and accuracy, per step.
        const dpo = '#training-charts section[data-kind="dpo"]';
        const rewards = await page.$$eval(`${dpo} svg[data-metric="rewards"] polyline.series`, (els) =>
          els.map((e) => `${e.getAttribute("data-series")}:${e.getAttribute("data-points")}`),
        );
        expect(rewards).toEqual(["chosen:2", "rejected:2"]);
        for (const metric of ["rewards/margins", "rewards/accuracies"])
          expect(
            await page.$$eval(`${dpo} svg[data-metric="${metric}"] polyline.series`, (els) =>
              els.map((e) => e.getAttribute("data-points")),
            ),
          ).toEqual(["2"]);
        // The DPO loss axis is fitted to its values near ln 2, not stretched from 0.
        const dpoLossTicks = await page.$$eval(`${dpo} svg[data-metric="loss"] text.tick.y`, (els) =>
          els.map((e) => Number(e.textContent)),
        );
        expect(dpoLossTicks.length).toBeGreaterThanOrEqual(3);
        expect(Math.min(...dpoLossTicks)).toBeGreaterThan(0.6);
        expect(Math.max(...dpoLossTicks)).toBeLessThan(0.8);
        // Steps are printed as integers, on the x axes and in the stage table.
        const xTicks = await page.$$eval("#training-charts text.tick.x", (els) =>
          els.map((e) => e.textContent),
        );
        expect(xTicks.length).toBeGreaterThan(0);
        expect(xTicks.every((t) => /^\d+$/.test(t ?? ""))).toBe(true);
        expect(await page.textContent("#stages")).toMatch(/global_step=8(?![.\d])/);
        const bars = await page.$$eval("#accuracy-charts rect.bar", (els) =>
          els.map((e) => Number(e.getAttribute("data-value"))),
        );
        expect(bars.length).toBeGreaterThanOrEqual(8);
        expect(bars.every((v) => Number.isFinite(v) && v >= 0 && v <= 100)).toBe(true);
        await mkdir(SCREENSHOT_DIR, { recursive: true });
        await page.screenshot({ path: join(SCREENSHOT_DIR, "miniature-report.png"), fullPage: false });
        await page.locator(dpo).screenshot({ path: join(SCREENSHOT_DIR, "miniature-report-dpo.png") });

        // Sample browser: a page of 50 of the 240 samples (2 tasks x 5 stages x 24 questions), and pages
        // that together hold every sample once.
        const rowIds = () =>
          page.$$eval("#samples tbody tr", (rows) =>
            rows.map((r) =>
              [...r.querySelectorAll("td")]
                .slice(0, 3)
                .map((c) => c.textContent)
                .join("|"),
            ),
          );
        expect(await page.textContent("#sample-count")).toBe("240 samples, showing 1–50");
        expect(await page.textContent("#page-count")).toBe("5");
        expect(await page.isDisabled("#page-prev")).toBe(true);
        const seen: string[] = [];
        for (let p = 1; p <= 5; p++) {
          const ids = await rowIds();
          expect(ids.length).toBe(p < 5 ? 50 : 40);
          seen.push(...ids);
          if (p < 5) await page.click("#page-next");
        }
        expect(await page.textContent("#sample-count")).toBe("240 samples, showing 201–240");
        expect(await page.isDisabled("#page-next")).toBe(true);
        expect(new Set(seen).size).toBe(240);
        await page.selectOption("#page", { label: "2" });
        expect(await page.textContent("#sample-count")).toBe("240 samples, showing 51–100");
        await page.selectOption("#page-size", "500");
        expect((await rowIds()).length).toBe(240);
        await page.selectOption("#page-size", "50");
        // Filters: only one task's samples, then one stage's, back on page 1.
        await page.selectOption("#task-filter", "miniature_letters");
        const tasks = await page.$$eval("#samples tbody tr", (rows) =>
          rows.map((r) => r.getAttribute("data-task")),
        );
        expect(tasks.length).toBe(50);
        expect(new Set(tasks)).toEqual(new Set(["miniature_letters"]));
        expect(await page.textContent("#sample-count")).toBe("120 samples, showing 1–50");
        await page.selectOption("#stage-filter", "+CPT+SFT");
        expect(await page.$$eval("#samples tbody tr", (rows) => rows.length)).toBe(24);
        expect(await page.textContent("#sample-count")).toBe("24 samples, showing 1–24");
        expect(await page.isDisabled("#page-next")).toBe(true);
        await page.selectOption("#stage-filter", "");
        await page.selectOption("#task-filter", "");
        // The sample browser at the top of the viewport (a clip from boundingBox() is relative to the scrolled
        // viewport, not the page, so a full-page clip caught the charts instead).
        await page.$eval("#samples-section", (el) => el.scrollIntoView({ block: "start" }));
        await page.screenshot({
          path: join(SCREENSHOT_DIR, "miniature-report-samples.png"),
          fullPage: false,
        });
        // Self-contained: nothing but the file itself was requested.
        expect(requests.filter((u) => !u.startsWith("file://"))).toEqual([]);
      } finally {
        await context.close();
        await removeTempDir(profile);
      }
    },
  );
});
