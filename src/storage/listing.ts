/** The order every listing of the registry is sorted in. */

/** Plain code-unit order, the "lexical" order of the distribution-spec (tags, the catalog). */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
