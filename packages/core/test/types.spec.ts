/**
 * Type tests of the user API (issue #22): what `remote()`, actors and `python.remote` give a strict
 * TypeScript user. Checked by `tsc --strict` (tools/typecheck.sh, packages/core/tsconfig.spec.json);
 * vitest runs the file too, where the `expectTypeOf` calls are no-ops. Nothing here submits work: each
 * call sits in a function that is type-checked, never called.
 */
import { describe, expectTypeOf, it } from 'vitest';
import { actor, get, type ObjectRef, type ObjectRefGenerator, python, remote } from '../src/index.js';

function identity<T>(x: T): T {
  return x;
}
function parse(x: string): number;
function parse(x: number): string;
function parse(x: string | number): number | string {
  return typeof x === 'string' ? Number(x) : String(x);
}
const add = remote(function add(a: number, b: string) {
  return a + b.length;
});
const identityOfNumber = remote(identity<number>);
const identityOfPair = remote(identity<{ a: number; b: string[] }>);
const overloaded = remote(parse);
const later = remote(async function later(x: number) {
  return [x];
});
const counting = remote(function* counting(n: number) {
  for (let i = 0; i < n; i++) yield i;
});
const streaming = remote(async function* streaming(prefix: string) {
  yield `${prefix}1`;
});
const optionalArgs = remote(function optionalArgs(x: number, label?: string) {
  return label ?? String(x);
});
const restArgs = remote(function restArgs(...xs: number[]) {
  return xs.length;
});

class Counter {
  n = 0;
  constructor(readonly start: number) {}
  increment(by = 1) {
    this.n += by;
    return this.n;
  }
  async load(key: string) {
    return { key, n: this.n };
  }
  describe(x: string): string;
  describe(x: number): number;
  describe(x: string | number): string | number {
    return x;
  }
}
const RemoteCounter = actor(Counter);

describe('remote() keeps the function signature', () => {
  it('plain functions: parameters accept values or refs, the result is a ref to the return type', () => {
    expectTypeOf(() => add.remote(1, 'x')).returns.toEqualTypeOf<ObjectRef<number>>();
    expectTypeOf(() => add.remote(add.remote(1, 'x'), 'y')).returns.toEqualTypeOf<ObjectRef<number>>();
    // @ts-expect-error: the first parameter is a number
    () => add.remote('1', 'x');
    // @ts-expect-error: a ref to a string is not a number
    () => add.remote(identityOfPair.remote({ a: 1, b: [] }), 'x');
    // @ts-expect-error: too few arguments
    () => add.remote(1);
  });

  it('generic functions keep their types when instantiated', () => {
    expectTypeOf(() => identityOfNumber.remote(1)).returns.toEqualTypeOf<ObjectRef<number>>();
    expectTypeOf(() => identityOfPair.remote({ a: 1, b: ['x'] })).returns.toEqualTypeOf<ObjectRef<{ a: number; b: string[] }>>();
    // The case: a generic function's ref passed on to a typed parameter.
    expectTypeOf(() => add.remote(identityOfNumber.remote(1), 'x')).returns.toEqualTypeOf<ObjectRef<number>>();
    // @ts-expect-error: instantiated with number, a string does not fit
    () => identityOfNumber.remote('x');
    // Left generic, its type parameter reads as its constraint (TypeScript cannot carry it through
    // `.remote`; docs/api.md says to instantiate): the result is a ref to unknown.
    const identityLeftGeneric = remote(identity);
    expectTypeOf(() => identityLeftGeneric.remote(1)).returns.toEqualTypeOf<ObjectRef<unknown>>();
  });

  it('overloads: each call is typed by the overload its arguments match', () => {
    expectTypeOf(() => overloaded.remote('1')).returns.toEqualTypeOf<ObjectRef<number>>();
    expectTypeOf(() => overloaded.remote(2)).returns.toEqualTypeOf<ObjectRef<string>>();
    expectTypeOf(() => overloaded.remote(overloaded.remote(2))).returns.toEqualTypeOf<ObjectRef<number>>();
    // @ts-expect-error: no overload takes a boolean
    () => overloaded.remote(true);
  });

  it('async functions resolve to their awaited value; optional and rest parameters stay so', () => {
    expectTypeOf(() => later.remote(1)).returns.toEqualTypeOf<ObjectRef<number[]>>();
    expectTypeOf(async () => get(later.remote(1))).returns.resolves.toEqualTypeOf<number[]>();
    expectTypeOf(() => optionalArgs.remote(1)).returns.toEqualTypeOf<ObjectRef<string>>();
    expectTypeOf(() => optionalArgs.remote(1, 'a')).returns.toEqualTypeOf<ObjectRef<string>>();
    expectTypeOf(() => restArgs.remote(1, 2, 3)).returns.toEqualTypeOf<ObjectRef<number>>();
  });

  it('generators stream refs; numReturns picks one ref or an array of refs', () => {
    expectTypeOf(() => counting.remote(3)).returns.toEqualTypeOf<ObjectRefGenerator<number>>();
    expectTypeOf(() => streaming.remote('p')).returns.toEqualTypeOf<ObjectRefGenerator<string>>();
    expectTypeOf(() => later.options({ numReturns: 2 }).remote(1)).returns.toEqualTypeOf<ObjectRef<number>[]>();
    expectTypeOf(() => later.options({ numReturns: 1 }).remote(1)).returns.toEqualTypeOf<ObjectRef<number[]>>();
    expectTypeOf(() => overloaded.options({ numCpus: 2 }).remote(2)).returns.toEqualTypeOf<ObjectRef<string>>();
  });
});

describe('actors', () => {
  it('constructor arguments and method calls are typed; methods keep overloads', () => {
    expectTypeOf(() => RemoteCounter.remote(1).increment.remote()).returns.toEqualTypeOf<ObjectRef<number>>();
    expectTypeOf(() => RemoteCounter.remote(1).increment.remote(2)).returns.toEqualTypeOf<ObjectRef<number>>();
    expectTypeOf(() => RemoteCounter.remote(1).load.remote('k')).returns.toEqualTypeOf<ObjectRef<{ key: string; n: number }>>();
    expectTypeOf(() => RemoteCounter.remote(1).describe.remote('k')).returns.toEqualTypeOf<ObjectRef<string>>();
    expectTypeOf(() => RemoteCounter.remote(1).describe.remote(3)).returns.toEqualTypeOf<ObjectRef<number>>();
    expectTypeOf(() => RemoteCounter.remote(1).increment.options({ name: 'inc' }).remote(2)).returns.toEqualTypeOf<ObjectRef<number>>();
    // @ts-expect-error: the constructor takes a number
    () => RemoteCounter.remote('one');
    // @ts-expect-error: misspelled methods do not compile
    () => RemoteCounter.remote(1).incremnt.remote();
    // @ts-expect-error: increment takes a number
    () => RemoteCounter.remote(1).increment.remote('2');
  });
});

describe('python.remote and python.actor', () => {
  it('take their types from the declared parameters', () => {
    const pyAdd = python.remote<[number, number], number>('mypkg.ops:add');
    expectTypeOf(() => pyAdd.remote(1, 2)).returns.toEqualTypeOf<ObjectRef<number>>();
    expectTypeOf(() => add.remote(pyAdd.remote(1, 2), 'x')).returns.toEqualTypeOf<ObjectRef<number>>();
    // @ts-expect-error: declared as numbers
    () => pyAdd.remote('1', 2);
    const Model = python.actor<{ predict(x: number[]): number[] }>('mypkg.model:Model');
    expectTypeOf(() => Model.remote().predict.remote([1])).returns.toEqualTypeOf<ObjectRef<number[]>>();
    // @ts-expect-error: predict takes an array
    () => Model.remote().predict.remote(1);
  });
});
