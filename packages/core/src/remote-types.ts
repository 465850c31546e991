/**
 * The types of `.remote()` calls: how a function's signature (overloads included) becomes the
 * signature of its remote calls, arguments widened to accept refs and results wrapped in refs.
 *
 * TypeScript cannot carry a generic function's type parameters through a mapped type, so a generic
 * function keeps its types when instantiated (`remote(identity<number>)`, an instantiation
 * expression); uninstantiated, its type parameters read as their constraints (`unknown`).
 * @module
 */
import type { ObjectRef } from './object-ref.js';
import type { ObjectRefGenerator } from './remote-function.js';

/** An argument as passed to `.remote()`: the value, or a ref to it (resolved before the task runs). */
export type RemoteArg<T> = T | ObjectRef<T>;
/** Arguments of `.remote()` for a function taking `A`. */
export type RemoteArgs<A extends readonly unknown[]> = { [K in keyof A]: RemoteArg<A[K]> };

type GenYield<R> = R extends AsyncGenerator<infer Y, unknown, unknown> ? Y : R extends Generator<infer Y, unknown, unknown> ? Y : never;
// `[R] extends [never]` first: a function that never returns (always throws) is not a generator.
type IsGen<R> = [R] extends [never]
  ? false
  : R extends AsyncGenerator<unknown, unknown, unknown>
    ? true
    : R extends Generator<unknown, unknown, unknown>
      ? true
      : false;
type Elem<T> = T extends readonly (infer E)[] ? E : unknown;

/** What `.remote()` returns for a function returning `R` under options `O`. */
export type RemoteResult<R, O> = O extends { numReturns: 'streaming' }
  ? ObjectRefGenerator<GenYield<R>>
  : O extends { numReturns: infer N extends number }
    ? number extends N
      ? ObjectRef<Awaited<R>> | ObjectRef<Elem<Awaited<R>>>[]
      : N extends 1
        ? ObjectRef<Awaited<R>>
        : ObjectRef<Elem<Awaited<R>>>[]
    : IsGen<R> extends true
      ? ObjectRefGenerator<GenYield<R>>
      : ObjectRef<Awaited<R>>;

/** Any function: the constraint of the function types `remote()` and actor methods accept. */
export type AnyFunction = (...args: never[]) => unknown;

/** One call signature of `.remote()`: the function's parameters as remote args, its result as refs. */
type RemoteSignature<A extends readonly unknown[], R, O> = (...args: RemoteArgs<A>) => RemoteResult<R, O>;

// A function with one signature is assignable from that signature alone; an overloaded one is not.
type HasOneSignature<F> = F extends (...a: infer A) => infer R ? (((...a: A) => R) extends F ? true : false) : false;

/**
 * The `.remote` call of a function of type `F` under options `O`: one signature, or one per overload
 * (up to four; TypeScript reads overloads through a pattern of fixed length, and fewer fill the
 * pattern with the first). A call then type-checks against the overload its arguments match.
 */
export type RemoteCall<F, O> = F extends {
  (...a: infer A1): infer R1;
  (...a: infer A2): infer R2;
  (...a: infer A3): infer R3;
  (...a: infer A4): infer R4;
}
  ? HasOneSignature<F> extends true
    ? RemoteSignature<A4, R4, O>
    : RemoteSignature<A1, R1, O> & RemoteSignature<A2, R2, O> & RemoteSignature<A3, R3, O> & RemoteSignature<A4, R4, O>
  : never;
