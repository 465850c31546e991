/**
 * The autoscaler part of `tsray status` (a head started by `tsray up`), as `ray status` shows it:
 * worker nodes by phase (launching, active, idle with for how long), demand left unfulfilled, recent
 * failures and decisions.
 * @module
 */
import type { AutoscalerStatus } from '@tsray/autoscaler';

const RULE = '-'.repeat(64);

function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 19);
}

/** The lines of the autoscaler section (no trailing newline). */
export function formatAutoscaler(a: AutoscalerStatus): string[] {
  const out = [
    '',
    `Autoscaler (cluster ${a.clusterName}, updated ${a.updatedAt ? clock(a.updatedAt) : 'never'}; ${a.launchedTotal} launched, ${a.terminatedTotal} removed idle)`,
    RULE,
  ];
  for (const phase of ['launching', 'active', 'idle'] as const) {
    const nodes = a.nodes.filter((n) => n.phase === phase);
    out.push(`${phase[0]!.toUpperCase()}${phase.slice(1)}: ${nodes.length}`);
    for (const n of nodes) {
      out.push(`  ${n.id}  ${n.type}  ${n.where}${n.nodeId ? `  node ${n.nodeId}` : ''}${n.idleS !== undefined ? `  idle ${n.idleS}s` : ''}`);
    }
  }
  out.push('Unfulfilled demand:');
  if (a.unfulfilled.length === 0) out.push('  (none)');
  for (const u of a.unfulfilled) out.push(`  ${u}`);
  out.push('Recent failures:');
  if (a.failures.length === 0) out.push('  (none)');
  for (const f of a.failures) out.push(`  ${clock(f.time)} ${f.type}: ${f.message}`);
  out.push('Recent decisions:');
  if (a.events.length === 0) out.push('  (none)');
  for (const e of a.events.slice(-10)) out.push(`  ${clock(e.time)} ${e.message}`);
  return out;
}
