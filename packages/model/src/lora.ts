import type * as tf from "@tensorflow/tfjs-core";

export interface LoraConfig {
  r: number;
  alpha: number;
  dropout: number;
  targetModules: string[];
  useRslora: boolean;
}

export interface LoraAdapter {
  name: string;
  config: LoraConfig;
  scaling: number;
  a: Map<string, tf.Variable>;
  b: Map<string, tf.Variable>;
}
