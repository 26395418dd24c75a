/**
 * Repository name globs, as retention policies and immutable-tag rules name repositories (zot's
 * form): `*` matches within one path component (`team/*` matches `team/app`, not `team/app/web`),
 * `**` matches across components (`team/**` matches both), `?` matches one character other than `/`.
 * Everything else matches itself. A glob matches the whole name.
 */

/** Characters a glob may hold: those of repository names, plus `*` and `?`. */
const GLOB_CHARS = /^[a-z0-9._\-/*?]+$/;

/**
 * The glob as a regular expression over whole repository names.
 * @throws SyntaxError when it is empty or holds a character no repository name or glob can hold
 */
export function compileGlob(glob: string): RegExp {
  if (!GLOB_CHARS.test(glob)) {
    throw new SyntaxError(`${JSON.stringify(glob)} is not a repository glob (lower-case names with *, ** and ?)`);
  }
  let source = '';
  for (let i = 0; i < glob.length; i += 1) {
    const c = glob[i] as string;
    if (c === '*' && glob[i + 1] === '*') {
      source += '.*';
      i += 1;
    } else if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else source += c.replace(/[.\-/]/g, (m) => `\\${m}`);
  }
  return new RegExp(`^${source}$`);
}

/** A matcher for any of `globs` (compiled once). @throws SyntaxError as compileGlob */
export function globMatcher(globs: readonly string[]): (repo: string) => boolean {
  const compiled = globs.map(compileGlob);
  return (repo) => compiled.some((re) => re.test(repo));
}

/**
 * What every name `glob` matches starts with: its characters before the first `*` or `?` (the whole
 * glob when it has none). An index reads only the names in that range.
 */
export function literalPrefix(glob: string): string {
  const wild = glob.search(/[*?]/);
  return wild < 0 ? glob : glob.slice(0, wild);
}

/** The longest prefix the strings share ('' for none). */
export function commonPrefix(strings: readonly string[]): string {
  if (strings.length === 0) return '';
  let prefix = strings[0] as string;
  for (const s of strings) while (!s.startsWith(prefix)) prefix = prefix.slice(0, -1);
  return prefix;
}
