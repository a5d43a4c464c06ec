import type { ProgressReporter, ProgressTaskOptions } from "@hippocrates/core";

export interface RecordedTask extends ProgressTaskOptions {
  /** Sum of the ticks. */
  ticked: number;
  ticks: number;
  info: Record<string, string | number>;
  done: boolean;
}

/** A ProgressReporter that keeps what it was told, for assertions on download progress. */
export function recordingProgress(): { reporter: ProgressReporter; tasks: RecordedTask[] } {
  const tasks: RecordedTask[] = [];
  return {
    tasks,
    reporter: {
      start(options) {
        const task: RecordedTask = { ...options, ticked: 0, ticks: 0, info: {}, done: false };
        tasks.push(task);
        return {
          tick(n = 1, info) {
            task.ticked += n;
            task.ticks++;
            if (info !== undefined) Object.assign(task.info, info);
          },
          done() {
            task.done = true;
          },
        };
      },
    },
  };
}
