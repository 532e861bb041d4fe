// The compiler's, benchmarks' and tests' seeded generator: the runtime's (runtime/seeded-random.ts).
export { seededRandom } from '../runtime/seeded-random.js';
