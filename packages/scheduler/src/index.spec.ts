import { describe, expect, it } from 'vitest';
import { RESOURCE_UNIT } from './index.js';

describe('scheduler', () => {
  it('uses 1e-4 granularity', () => {
    expect(RESOURCE_UNIT).toBe(10_000);
  });
});
