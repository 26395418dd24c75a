/**
 * The `_state` token on upload Locations: the session's name, id, offset and start time, signed with
 * HMAC-SHA256 under `http.secret`, so any replica sharing the secret can take the next request.
 *
 * The format is registry:2's (base64url with padding of `mac || json`, JSON keys Name, UUID, Offset,
 * StartedAt), so an upload begun on registry:2 can be finished on Berth with the same secret.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { blobUploadInvalid } from '../errors.js';

export interface UploadState {
  readonly name: string;
  readonly uuid: string;
  readonly offset: number;
  readonly startedAt: Date;
}

const MAC_BYTES = 32;

export interface UploadStateCodec {
  encode(state: UploadState): string;
  /** @throws RegistryError BLOB_UPLOAD_INVALID when the token is malformed or not signed with our secret */
  decode(token: string): UploadState;
}

export function createUploadStateCodec(secret: string): UploadStateCodec {
  const mac = (message: Buffer): Buffer => createHmac('sha256', secret).update(message).digest();
  return {
    encode(state) {
      const message = Buffer.from(
        JSON.stringify({ Name: state.name, UUID: state.uuid, Offset: state.offset, StartedAt: state.startedAt.toISOString() }),
      );
      return toBase64Url(Buffer.concat([mac(message), message]));
    },
    decode(token) {
      const raw = Buffer.from(token.replaceAll('-', '+').replaceAll('_', '/'), 'base64');
      // Node's decoder skips junk and missing padding; accept only the one canonical spelling.
      if (raw.length <= MAC_BYTES || toBase64Url(raw) !== token) throw blobUploadInvalid('malformed _state');
      const message = raw.subarray(MAC_BYTES);
      if (!timingSafeEqual(raw.subarray(0, MAC_BYTES), mac(message))) throw blobUploadInvalid('_state is not signed by this registry');
      return parseState(message);
    },
  };
}

/** Base64 with the URL alphabet, padded, as Go's base64.URLEncoding writes it. */
function toBase64Url(data: Buffer): string {
  return data.toString('base64').replaceAll('+', '-').replaceAll('/', '_');
}

function parseState(message: Buffer): UploadState {
  let doc: unknown;
  try {
    doc = JSON.parse(message.toString('utf8'));
  } catch {
    throw blobUploadInvalid('malformed _state');
  }
  const { Name, UUID, Offset, StartedAt } = (doc ?? {}) as Record<string, unknown>;
  const startedAt = typeof StartedAt === 'string' ? new Date(StartedAt) : new Date(NaN);
  if (typeof Name !== 'string' || typeof UUID !== 'string' || !Number.isSafeInteger(Offset) || Number.isNaN(startedAt.getTime())) {
    throw blobUploadInvalid('malformed _state');
  }
  return { name: Name, uuid: UUID, offset: Offset as number, startedAt };
}
