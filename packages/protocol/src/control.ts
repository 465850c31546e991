/**
 * Types of the control plane's typed calls (`GcsRequest` / `GcsResponse`): the name of each call and
 * result, and the object that sets exactly one of them, as {@link EnvelopeBody} does for the envelope.
 * @module
 */
import type { tsray } from './generated/tsray.js';

/** Name of a call of `GcsRequest`'s `call` oneof (`"actorRegister"`, `"kvGet"`, ...). */
export type GcsCallKind = NonNullable<tsray.v1.GcsRequest['call']>;

/** Name of a result of `GcsResponse`'s `result` oneof (`"ok"`, `"actors"`, ...). */
export type GcsResultKind = NonNullable<tsray.v1.GcsResponse['result']>;

/** A control call: an object that sets exactly one field of `GcsRequest.call`, e.g. `{ kvGet: { key } }`. */
export type GcsCall = {
  [K in GcsCallKind]: { [P in K]: NonNullable<tsray.v1.GcsRequest.$Properties[P]> };
}[GcsCallKind];

/** A control result: an object that sets exactly one field of `GcsResponse.result`, e.g. `{ ok: true }`. */
export type GcsResult = {
  [K in GcsResultKind]: { [P in K]: NonNullable<tsray.v1.GcsResponse.$Properties[P]> };
}[GcsResultKind];
