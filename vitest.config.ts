import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/tmpdir.setup.ts'],
    // runtel's crash handlers would end vitest's workers; tests that need them spawn a child process.
    env: { RUNTEL_EXIT_HANDLERS: 'false' },
    testTimeout: 120_000,
    hookTimeout: 300_000,
    pool: 'forks',
    // Two cores: test files that start MLflow, Jaeger or a collector each get a core.
    maxWorkers: 2,
  },
});
