/**
 * `tsray timeline`: the cluster's recent tasks as a Chrome trace (the JSON `ray timeline` writes; open
 * it in https://ui.perfetto.dev or chrome://tracing). One complete event (`ph: "X"`) per finished task
 * or actor call, on a row per node (`pid`) and worker process (`tid`), plus metadata events naming them.
 * @module
 */
import type { NodeInfo, TaskEvent } from '../contracts.js';

/** One Chrome trace event (the subset tsray writes). */
export interface TraceEvent {
  name: string;
  /** `X` complete event, `M` metadata. */
  ph: 'X' | 'M';
  pid: number;
  tid: number;
  cat?: string;
  /** µs since the epoch. */
  ts?: number;
  /** µs. */
  dur?: number;
  cname?: string;
  args: Record<string, unknown>;
}

/** The trace of these task events; `nodes` name the node rows (`Node <address>`). */
export function chromeTrace(events: TaskEvent[], nodes: NodeInfo[]): TraceEvent[] {
  const nodeIndex = new Map<string, number>();
  const out: TraceEvent[] = [];
  const indexOf = (nodeId: string): number => {
    let i = nodeIndex.get(nodeId);
    if (i === undefined) {
      i = nodeIndex.size;
      nodeIndex.set(nodeId, i);
      const n = nodes.find((x) => x.nodeId === nodeId);
      out.push({ name: 'process_name', ph: 'M', pid: i, tid: 0, args: { name: `Node ${n?.address ?? nodeId}` } });
    }
    return i;
  };
  const threads = new Set<string>();
  for (const e of [...events].sort((a, b) => a.startUs - b.startUs)) {
    const pid = indexOf(e.nodeId);
    if (!threads.has(`${pid}/${e.pid}`)) {
      threads.add(`${pid}/${e.pid}`);
      out.push({ name: 'thread_name', ph: 'M', pid, tid: e.pid, args: { name: `worker:${e.workerId || e.pid}` } });
    }
    out.push({
      cat: 'task',
      name: e.name,
      ph: 'X',
      pid,
      tid: e.pid,
      ts: e.startUs,
      dur: e.durUs,
      cname: e.actorId ? 'rail_response' : 'generic_work',
      args: {
        task_id: e.taskId,
        job_id: e.jobId,
        attempt_number: e.attempt,
        func_or_class_name: e.name,
        ...(e.actorId ? { actor_id: e.actorId } : {}),
        node_id: e.nodeId,
        worker_id: e.workerId,
      },
    });
  }
  return out;
}
