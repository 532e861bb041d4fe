// What a pass is: a named, pure function from a graph to a graph.
import type { Graph } from '../ir/graph.js';
import type { ModelConfig } from '../ir/model-config.js';

export interface PassContext {
  config: ModelConfig;
}

export interface Pass {
  name: string;
  description: string;
  run(graph: Graph, context: PassContext): Graph;
}
