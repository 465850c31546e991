/** @internal */
let sink: unknown;
/** Keeps `v` reachable up to this call (refs must not be collected while their values are awaited). @internal */
export function keepAlive(v: unknown): void {
  sink = v;
  sink = undefined;
  void sink;
}
