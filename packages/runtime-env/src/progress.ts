/**
 * Showing setup progress to the user: a line when a build starts (what is installed, with which
 * installer, where the log is), a spinner with the latest installer line while it runs (on a
 * terminal; elsewhere a line every few seconds), and a line when it ends.
 * @module
 */
import type { RuntimeEnvProgress } from './agent.js';

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/** A progress callback that writes to `stream` (default: stderr). Call `.stop()` to end spinners. */
export function progressPrinter(
  stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number } = process.stderr,
): ((p: RuntimeEnvProgress) => void) & { stop(): void } {
  const tty = stream.isTTY === true;
  const running = new Map<string, { p: RuntimeEnvProgress; started: number; lastPrinted: number }>();
  let frame = 0;
  let timer: NodeJS.Timeout | undefined;
  let drawn = false;
  const label = (p: RuntimeEnvProgress) => (p.kind === 'pkg' ? `${p.packages.join(', ')} ${p.hash}` : `${p.kind} [${p.packages.join(', ')}]`);
  const clear = () => {
    if (tty && drawn) stream.write('\r\x1b[2K');
    drawn = false;
  };
  const draw = () => {
    if (!tty || running.size === 0) return;
    const [first] = running.values();
    const secs = ((Date.now() - first!.started) / 1000).toFixed(1);
    const more = running.size > 1 ? ` (+${running.size - 1} more)` : '';
    const line = `${FRAMES[frame++ % FRAMES.length]} tsray runtime env: ${label(first!.p)} ${secs}s: ${first!.p.message}${more}`;
    const width = Math.max(20, (stream.columns ?? 100) - 1);
    stream.write(`\r\x1b[2K${line.length > width ? `${line.slice(0, width - 1)}…` : line}`);
    drawn = true;
  };
  const print = (line: string) => {
    clear();
    stream.write(`${line}\n`);
    draw();
  };
  const fn = (p: RuntimeEnvProgress) => {
    const key = `${p.kind}/${p.hash}`;
    if (p.phase === 'start') {
      running.set(key, { p, started: Date.now(), lastPrinted: Date.now() });
      print(`tsray runtime env: ${p.message}${p.logFile && p.kind !== 'pkg' ? ` (log: ${p.logFile})` : ''}`);
      if (tty && !timer) {
        timer = setInterval(draw, 120);
        timer.unref();
      }
    } else if (p.phase === 'progress') {
      const r = running.get(key);
      if (!r) return;
      r.p = p;
      if (!tty && Date.now() - r.lastPrinted > 3000) {
        r.lastPrinted = Date.now();
        print(`tsray runtime env: ${label(p)} ${(p.elapsedMs / 1000).toFixed(1)}s: ${p.message}`);
      }
    } else {
      running.delete(key);
      print(`tsray runtime env: ${label(p)} ${p.phase === 'done' ? p.message : `failed after ${(p.elapsedMs / 1000).toFixed(1)} s: ${p.message}`}`);
      if (running.size === 0 && timer) {
        clearInterval(timer);
        timer = undefined;
        clear();
      }
    }
  };
  return Object.assign(fn, {
    stop: () => {
      if (timer) clearInterval(timer);
      timer = undefined;
      clear();
      running.clear();
    },
  });
}
