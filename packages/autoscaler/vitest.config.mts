import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: import.meta.dirname,
  test: {
    name: 'autoscaler',
    include: ['src/**/*.spec.ts', 'test/**/*.spec.ts'],
    environment: 'node',
    pool: 'forks',
    // A deadline for a hung test, not a measure of speed: clusters of real processes on a busy 2-core machine.
    testTimeout: 180_000,
    hookTimeout: 60_000,
  },
});
