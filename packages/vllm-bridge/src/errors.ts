/**
 * Errors of the vLLM bridge.
 * @module
 */
import { TsrayError } from '@tsray/core';

/** The engine could not start: bad model folder, bad engine args (the engine's own message is kept). */
export class EngineStartError extends TsrayError {
  override name = 'EngineStartError';
  constructor(
    readonly model: string,
    readonly detail: string,
  ) {
    super(`engine for ${model} failed to start: ${detail}`);
  }
}

/** The engine process died while requests were in flight (they fail with this error). */
export class EngineDeadError extends TsrayError {
  override name = 'EngineDeadError';
}

/** A request was refused: invalid sampling params (`field`), prompt too long (`limit`), engine error. */
export class GenerateRequestError extends TsrayError {
  override name = 'GenerateRequestError';
  constructor(
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly limit?: number,
  ) {
    super(message);
  }
}

/** The request was aborted (by `abort()`, an AbortSignal, or a disconnected HTTP client). */
export class GenerateAbortedError extends TsrayError {
  override name = 'GenerateAbortedError';
}
