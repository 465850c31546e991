import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: import.meta.dirname,
  test: {
    name: 'protocol',
    include: ['src/**/*.spec.ts', 'test/**/*.spec.ts'],
    environment: 'node',
    pool: 'forks',
    // Regenerates src/generated from the .proto when it is missing or stale (a no-op when current).
    globalSetup: ['./test/global-setup.ts'],
  },
});
