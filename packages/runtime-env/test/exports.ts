// The package under test, from its build (dist/), plus small helpers shared by the tests.
export * from '../src/index.js';

/** True when `e` carries tsray's error marker (what TsrayError.isInstance checks in core). */
export function TsrayErrorMarker(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[Symbol.for('tsray.error')] === true;
}
