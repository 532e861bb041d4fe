// SGLang's trivial map: physical slot p holds expert p mod E, every layer alike; spare slots
// replicate the lowest-numbered experts whatever their load.
import type { Placement, PlacementProblem } from './placement.js';

export function roundRobinPlacement({ trace, experts, devices, slotsPerDevice }: PlacementProblem): Placement {
  const row = Array.from({ length: devices * slotsPerDevice }, (_, p) => p % experts);
  return { devices, slotsPerDevice, physicalToLogical: trace.layers.map(() => [...row]) };
}
