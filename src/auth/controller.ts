/**
 * The access controller contract: given a request's Authorization header and the access it needs,
 * answer what the caller holds, or refuse with a 401 challenge. One implementation per auth mode
 * (token, htpasswd); with no auth configured there is none and every request is allowed.
 */
import type { AccessItem, Grant } from './access.js';

export interface AuthRequest {
  /** The Authorization header, if any. */
  readonly authorization: string | undefined;
  /** The externally visible base URL of this request (scheme://host), for realms relative to it. */
  readonly baseUrl: string;
}

export interface AccessController {
  /**
   * What the caller holds when it holds at least `needed`.
   * @throws UnauthorizedError (401 + WWW-Authenticate) when credentials are missing, invalid or insufficient.
   */
  authorize(req: AuthRequest, needed: readonly AccessItem[]): Promise<Grant>;
}
