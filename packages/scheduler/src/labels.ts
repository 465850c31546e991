import { ResourceValidationError } from './errors.js';
import { describe } from './resource-request.js';

/** Operators of a node-label constraint (Ray's In / NotIn / Exists / DoesNotExist). */
export type LabelOperator = 'in' | 'not_in' | 'exists' | 'does_not_exist';

/** One constraint on a node label: `key in (values)`, `key not in (values)`, `key exists`, `key does not exist`. */
export interface LabelConstraint {
  /** Label key, e.g. `ray.io/accelerator-type` or `zone`. */
  readonly key: string;
  /** The operator. */
  readonly op: LabelOperator;
  /** Values for `in` / `not_in` (at least one). */
  readonly values?: readonly string[];
}

/** A label selector: every constraint must hold (AND). An empty selector matches every node. */
export type LabelSelector = readonly LabelConstraint[];

/** The label Ray sets on every node to its id; {@link ClusterView} adds it implicitly. */
export const NODE_ID_LABEL = 'ray.io/node-id';

/** `key in (values)`. */
export function labelIn(key: string, ...values: string[]): LabelConstraint {
  return { key, op: 'in', values };
}
/** `key not in (values)` (also true when the node lacks the label, as Ray's NotIn). */
export function labelNotIn(key: string, ...values: string[]): LabelConstraint {
  return { key, op: 'not_in', values };
}
/** `key exists`. */
export function labelExists(key: string): LabelConstraint {
  return { key, op: 'exists' };
}
/** `key does not exist`. */
export function labelDoesNotExist(key: string): LabelConstraint {
  return { key, op: 'does_not_exist' };
}

/**
 * Checks a selector's shape. Throws {@link ResourceValidationError} (option `<option>[i]`) on an unknown
 * operator, an empty key, or `in`/`not_in` without values.
 */
export function validateLabelSelector(sel: unknown, option: string): LabelSelector {
  if (sel === undefined) return [];
  if (!Array.isArray(sel)) throw new ResourceValidationError(option, `${option} must be an array of label constraints, got ${describe(sel)}`);
  sel.forEach((c: unknown, i) => {
    const o = `${option}[${i}]`;
    if (c === null || typeof c !== 'object') throw new ResourceValidationError(o, `${o} must be {key, op, values?}, got ${describe(c)}`);
    const { key, op, values } = c as Partial<LabelConstraint>;
    if (typeof key !== 'string' || key === '') throw new ResourceValidationError(o, `${o}.key must be a non-empty string, got ${describe(key)}`);
    if (op !== 'in' && op !== 'not_in' && op !== 'exists' && op !== 'does_not_exist') {
      throw new ResourceValidationError(o, `${o}.op must be 'in', 'not_in', 'exists' or 'does_not_exist', got ${describe(op)}`);
    }
    if ((op === 'in' || op === 'not_in') && (!Array.isArray(values) || values.length === 0 || values.some((v) => typeof v !== 'string'))) {
      throw new ResourceValidationError(o, `${o}.values must be a non-empty array of strings for '${op}', got ${describe(values)}`);
    }
  });
  return sel as LabelSelector;
}

/** True when `labels` (plus the implicit node-id label) satisfy every constraint of `sel`. */
export function matchesLabels(sel: LabelSelector, labels: ReadonlyMap<string, string>, nodeId: string): boolean {
  for (const c of sel) {
    const v = c.key === NODE_ID_LABEL && !labels.has(NODE_ID_LABEL) ? nodeId : labels.get(c.key);
    switch (c.op) {
      case 'in':
        if (v === undefined || !c.values!.includes(v)) return false;
        break;
      case 'not_in':
        if (v !== undefined && c.values!.includes(v)) return false;
        break;
      case 'exists':
        if (v === undefined) return false;
        break;
      case 'does_not_exist':
        if (v !== undefined) return false;
        break;
    }
  }
  return true;
}
