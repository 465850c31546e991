/**
 * @module @tsray/scheduler
 * Resources in fixed point and scheduling policies: pure logic, no sockets, no processes.
 */
export const RESOURCE_UNIT = 10_000;
