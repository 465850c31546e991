import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: import.meta.dirname,
  test: { name: 'example-08-runtime-env', include: ['*.spec.ts'], environment: 'node', pool: 'forks', testTimeout: 180_000 },
});
