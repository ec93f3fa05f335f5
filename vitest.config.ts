import { defineConfig } from 'vitest/config';

// Unit tests are pure and fast; integration tests start real registries, helm and helmfile.
export default defineConfig({
  test: {
    projects: [
      {
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 10_000 },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 300_000,
          // real servers and processes: keep the 2-core machine from thrashing
          fileParallelism: false,
        },
      },
    ],
  },
});
