// One seeded generator for all test data, so a printed seed reproduces a failure: the compiler's.
export { seededRandom } from '../../compiler/seeded-random.js';
