import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: import.meta.dirname,
  test: { name: 'example-09-dp-training', include: ['*.spec.ts'], environment: 'node', pool: 'forks', testTimeout: 300_000 },
});
