/** Listen addresses as config.yml writes them (`http.addr`, `http.debug.addr`). */

/** `host:port`, `:port` (every interface) or `[v6]:port`. */
export function parseAddr(addr: string): { host: string; port: number } {
  const at = addr.lastIndexOf(':');
  const host = addr.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  return { host: host === '' ? '0.0.0.0' : host, port: Number(addr.slice(at + 1)) };
}
