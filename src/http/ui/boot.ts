/**
 * The boot document: what the server puts in the UI's page for its first view (first-view.ts) and the
 * page's script reads (web/src/nav.ts), in `<script type="application/json" id="berth-boot">`. Types
 * only, with no import: both the server's program and the web UI's (web/tsconfig.json, browser-only
 * types) compile this file, so the two sides cannot drift apart.
 */

/** One API answer, as the page's script would have received it. */
export interface EmbeddedAnswer {
  /** Only answers that succeeded are embedded; for any other the page asks the API itself. */
  readonly status: 200;
  /** The `Link` header, when the answer has a next page. */
  readonly link?: string;
  /** A JSON answer's body (absent for a manifest). */
  readonly body?: unknown;
  /**
   * A manifest's answer (`GET /v2/<name>/manifests/<reference>` with every manifest type the page knows
   * accepted): its bytes as text, its `Content-Type` and its `Docker-Content-Digest`.
   */
  readonly manifest?: { readonly text: string; readonly mediaType: string; readonly digest: string };
}

/** The whole document. */
export interface Boot {
  /** The path of `/ui/` on this server (`http.prefix` included), ending in `/`. */
  readonly base: string;
  /**
   * What `GET /v2/` without credentials answers: null (200, no auth) or the challenge of its 401; and
   * whether this server serves the built-in issuer's `/auth/jwks`. The page learns its auth mode from
   * these instead of asking. Absent when the server could not wait for it: the page then asks.
   */
  readonly auth?: { readonly challenge: string | null; readonly issuer: boolean };
  /** API answers for the first view, by the path (relative to the prefix, no leading slash) the page's script asks them by. */
  readonly answers: Readonly<Record<string, EmbeddedAnswer>>;
}
