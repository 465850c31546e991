import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: import.meta.dirname,
  test: { name: 'example-10-autoscaler', include: ['*.spec.ts'], environment: 'node', pool: 'forks', testTimeout: 240_000, hookTimeout: 60_000 },
});
