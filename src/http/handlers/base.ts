import type { Handler } from '../context.js';

/** `GET /v2/`: the API version check clients make first. */
export const getBase: Handler = async (ctx) => {
  ctx.status = 200;
  ctx.type = 'application/json; charset=utf-8';
  ctx.body = '{}';
};
