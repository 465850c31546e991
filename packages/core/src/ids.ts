/**
 * Short unique ids. Every process has a random prefix; ids are `<prefix><counter base36>`.
 * Return ids of a task are `<taskId>.<index>`; generator items `<taskId>.g<index>`.
 * @internal
 */
import { randomBytes } from 'node:crypto';

const PREFIX = randomBytes(6).toString('base64url');
let counter = 0;

/** A new id, unique across processes of a session (random 48-bit process prefix + counter). */
export function newId(kind: string): string {
  return `${kind}${PREFIX}${(counter++).toString(36)}`;
}

/** Return id number `i` of task `taskId`. */
export function returnId(taskId: string, i: number): string {
  return `${taskId}.${i}`;
}

/** Id of item `i` of streaming task `taskId`. */
export function generatorItemId(taskId: string, i: number): string {
  return `${taskId}.g${i}`;
}
