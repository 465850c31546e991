import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: import.meta.dirname,
  test: {
    name: 'protocol',
    include: ['src/**/*.spec.ts', 'test/**/*.spec.ts'],
    environment: 'node',
    pool: 'forks',
    // A deadline for a hung test, not a measure of speed: generous, so a busy 2-core machine passes too.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Regenerates src/generated from the .proto when it is missing or stale (a no-op when current).
    globalSetup: ['./test/global-setup.ts'],
  },
});
