import { describe, expect, it } from "vitest";
import { createBarReporter, formatDuration, silentProgress } from "../src/index.js";

function fakeStream() {
  const lines: string[] = [];
  return {
    lines,
    stream: { isTTY: false, write: (s: string) => lines.push(s) } as unknown as NodeJS.WriteStream,
  };
}

describe("progress", () => {
  it("formats durations", () => {
    expect(formatDuration(5)).toBe("5s");
    expect(formatDuration(125)).toBe("2m05s");
    expect(formatDuration(3720)).toBe("1h02m");
    expect(formatDuration(Number.NaN)).toBe("?");
  });

  it("renders a bar with count, rate, ETA and info", () => {
    const { lines, stream } = fakeStream();
    const task = createBarReporter({ stream, intervalMs: 0, width: 10 }).start({
      name: "sft",
      total: 4,
      unit: "step",
    });
    task.tick(1, { loss: 1.5 });
    task.tick(1, { loss: 1.25 });
    task.done();
    task.done();
    expect(lines).toHaveLength(3);
    expect(lines[1]).toMatch(/^sft {2}\[#####\.{5}\] 2\/4 step {2}\S+ step\/s {2}ETA \S+ {2}loss=1\.25\n$/);
    expect(lines[2]).toMatch(/4\/4|2\/4/);
    expect(lines[2]).toMatch(/in \d+s/);
  });

  it("silentProgress does nothing", () => {
    const t = silentProgress.start({ name: "x" });
    t.tick();
    t.done();
  });
});
