import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup/gpu-env.ts'],
    pool: 'forks', // Dawn is a native addon: one process per test file, not worker threads
    testTimeout: 120_000, // software Vulkan / SwiftShader are slow
    hookTimeout: 120_000,
  },
});
