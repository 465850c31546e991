import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: import.meta.dirname,
  test: {
    name: 'runtime-env',
    include: ['src/**/*.spec.ts', 'test/**/*.spec.ts'],
    environment: 'node',
    pool: 'forks',
    // Real pip and npm installs: seconds each, more on a loaded 2-core CI machine.
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
