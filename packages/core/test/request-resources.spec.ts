// requestResources() at the edge: bad bundles are refused with a ValidationError naming the option,
// and a call before init() says so. (Its effect on a cluster: packages/autoscaler/test/placement-group.spec.ts.)
import { describe, expect, it } from 'vitest';
import { requestResources, RuntimeStateError, ValidationError } from '../src/index.js';

describe('requestResources()', () => {
  it('refuses bad bundles, naming the option', async () => {
    await expect(requestResources({ bundles: [{ CPU: -1 }] })).rejects.toThrow(ValidationError);
    await expect(requestResources({ bundles: [{ CPU: -1 }] })).rejects.toThrow('requestResources: bundles[0].CPU must be a non-negative number; got -1');
    await expect(requestResources({ bundles: ['x' as never] })).rejects.toThrow('requestResources: bundles[0] must be an object such as { CPU: 1 }');
    await expect(requestResources({ numCpus: 1.5 })).rejects.toMatchObject({ option: 'numCpus' });
    const many = Array.from({ length: 200 }, (_, i) => ({ [`r${i}`]: 1 }));
    await expect(requestResources({ bundles: many })).rejects.toThrow(/characters; at most 1000/);
  });

  it('needs a running tsray', async () => {
    await expect(requestResources({ bundles: [{ CPU: 1 }] })).rejects.toThrow(RuntimeStateError);
  });
});
