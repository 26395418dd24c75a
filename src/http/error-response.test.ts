import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RegistryError } from '../errors.js';
import { ERROR_STATUS, errorResponse } from './error-response.js';

describe('error responses', () => {
  it('every code has a status and a row in the README error table', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    for (const [code, status] of Object.entries(ERROR_STATUS)) {
      expect(readme, code).toContain(`| \`${code}\` | ${status} |`);
    }
  });

  it('writes the distribution-spec body with code, message and detail', () => {
    const res = errorResponse(new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { digest: 'sha256:x' }), () => {
      throw new Error('not a bug');
    });
    expect(res).toEqual({
      status: 404,
      body: { errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown to registry', detail: { digest: 'sha256:x' } }] },
    });
  });

  it('answers anything else as a bare 500 UNKNOWN and reports it, echoing nothing', () => {
    const reported: unknown[] = [];
    const bug = new Error('secret path /etc/shadow');
    const res = errorResponse(bug, (e) => reported.push(e));
    expect(res).toEqual({ status: 500, body: { errors: [{ code: 'UNKNOWN', message: 'unknown error' }] } });
    expect(JSON.stringify(res.body)).not.toContain('shadow');
    expect(reported).toEqual([bug]);
  });
});
