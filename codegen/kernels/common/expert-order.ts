// Mixed precision stores a layer's experts ordered by format (passes/group-experts-by-format.ts):
// kernels that translate between expert ids and storage positions carry the order as a WGSL
// constant, and their names carry a tag of it (two orders are two kernels).

/** `const NAME = array<u32, n>(...);` holding `order`, or nothing without one. */
export const orderConstant = (name: string, order: readonly number[] | undefined): string =>
  order ? `const ${name} = array<u32, ${order.length}>(${order.map((e) => `${e}u`).join(', ')});` : '';

/** A short, stable tag of an order for kernel names (`_o1x2k9`), or '' without one. */
export const orderTag = (order: readonly number[] | undefined): string =>
  (order ? `_o${order.reduce((h, e) => (Math.imul(h, 31) + e + 1) >>> 0, 7).toString(36)}` : '');
