// The verifier accepts what the builder makes and rejects each kind of broken graph.
import { describe, expect, it } from 'vitest';
import { checkSpec } from '../../compiler/spec/check.js';
import { buildModelGraph, buildMoeBlockGraph } from '../../ir/build-model.js';
import type { Graph } from '../../ir/graph.js';
import { printGraph } from '../../ir/print.js';
import { verifyGraph } from '../../ir/verify.js';

const spec = `
model "tiny" {
  hidden = 16  vocab = 32  layers = 3
  norm = rmsnorm(eps = 1e-6)
  attention = gqa(heads = 4, kv_heads = 2)
  dense { mlp = swiglu(intermediate = 24) }
  moe {
    experts = 4  top_k = 2  first_layer = 1
    router = softmax_topk(renormalize = false)
    expert = swiglu(intermediate = 8)
    shared = swiglu(intermediate = 12)
    shared_gate = sigmoid
  }
}`;
const config = checkSpec(spec, 'tiny.moe').config!;

function block(): Graph {
  return buildMoeBlockGraph(config, 1);
}

describe('IR verifier', () => {
  it('accepts the whole model and each MoE block the builder makes', () => {
    expect(() => verifyGraph(buildModelGraph(config))).not.toThrow();
    expect(() => verifyGraph(block())).not.toThrow();
  });

  it('rejects a shape that inference does not give', () => {
    const g = block();
    g.ops[1]!.outputs[0]!.type = { shape: ['T', 17], dtype: 'f32' };
    expect(() => verifyGraph(g)).toThrow(/inference gives \[T, 16\] f32/);
  });

  it('rejects a weight of the wrong shape', () => {
    const g = block();
    g.params[0]!.type = { shape: [5, 16], dtype: 'f32' };
    expect(() => verifyGraph(g)).toThrow(/weight has shape \[5, 16\], expected \[4, 16\]/);
  });

  it('rejects a use before definition', () => {
    const g = block();
    g.ops.reverse();
    expect(() => verifyGraph(g)).toThrow(/before it is defined/);
  });

  it('rejects a value defined twice', () => {
    const g = block();
    g.ops.push(g.ops[0]!);
    expect(() => verifyGraph(g)).toThrow(/defined twice/);
  });

  it('rejects an unknown opcode and a missing input', () => {
    const g = block();
    g.ops[0]!.opcode = 'moe.teleport';
    expect(() => verifyGraph(g)).toThrow(/unknown opcode moe.teleport/);
    const h = block();
    h.ops[0]!.inputs.pop();
    expect(() => verifyGraph(h)).toThrow(/takes 2 inputs/);
  });

  it('refuses to build the MoE block of a dense layer', () => {
    expect(() => buildMoeBlockGraph(config, 0)).toThrow(/layer 0 of tiny is not an MoE layer \(MoE layers: 1, 2\)/);
  });

  it('prints the same text for the same graph', () => {
    const text = printGraph(block());
    expect(printGraph(block())).toBe(text);
    expect(text).toContain('moe.route(%hidden_states, %layers.1.moe.router.weight)');
    expect(text).toContain('sigmoid_gate(%layers.1.moe.shared, %hidden_states, %layers.1.moe.shared_gate.weight)');
  });
});
