/**
 * The seed's task examples, in TypeScript.
 *
 *   @ray.remote
 *   def fun(a): return a
 *   obj_ref = fun.remote(a); value = ray.get(obj_ref)
 *
 *   @ray.remote
 *   def function_with_an_argument(value): return value + 1
 *   obj_ref2 = function_with_an_argument.remote(obj_ref)
 *   assert ray.get(obj_ref2) == 2
 *
 * Run: npx tsx examples/01-tasks/main.ts
 */
import { get, init, isMain, put, remote, shutdown, wait } from '@tsray/core';

// Remote functions live at the top level of a module: workers import this module to find them.
export const fun = remote(function fun(a: number): number {
  return a;
});

export const functionWithAnArgument = remote(function function_with_an_argument(value: number) {
  return value + 1;
});

export const slowSquare = remote(async function slowSquare(x: number) {
  await new Promise((r) => setTimeout(r, 50 * (5 - x)));
  console.log(`squared ${x}`);
  return x * x;
});

// The main code runs in the driver only (workers import this module too).
if (isMain(import.meta)) {
  await init();
  const a = 1;
  const objRef = fun.remote(a);
  const value = await get(objRef);
  console.log(`fun.remote(${a}) -> ${value}`);

  // A ref as an argument: the second task waits for the first and receives its value.
  const objRef2 = functionWithAnArgument.remote(objRef);
  const two = await get(objRef2);
  if (two !== 2) throw new Error(`expected 2, got ${two}`);
  console.log(`function_with_an_argument.remote(obj_ref) -> ${two}`);

  // put() places a value in the object store; refs to it are arguments like any other.
  const stored = put(41);
  console.log(`function_with_an_argument.remote(put(41)) -> ${await get(functionWithAnArgument.remote(stored))}`);

  // Fan out, then collect in completion order with wait().
  let pending = [0, 1, 2, 3, 4].map((x) => slowSquare.remote(x));
  const order: number[] = [];
  while (pending.length > 0) {
    const { ready, notReady } = await wait(pending);
    order.push(await get(ready[0]!));
    pending = notReady;
  }
  console.log(`squares in completion order: ${order.join(', ')}`);
  await shutdown();
}
