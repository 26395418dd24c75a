/**
 * Immutable tags (`storage.immutabletags`, issue #16): a tag a rule covers, once set, can be neither
 * moved to another manifest nor deleted (nor removed with its manifest); pushing the same manifest
 * to it again succeeds. manifests.ts checks at its write entry points (a PUT by tag, a DELETE by tag
 * or by digest) and refuses with DENIED naming the rule.
 *
 * Writes to one tag run one at a time (tag-lanes.ts; across replicas through Redis), so of two first
 * pushes racing each other the second finds the tag set and is refused.
 */
import { RegistryError } from '../../errors.js';
import { globMatcher } from '../repo-glob.js';

/** One rule as configured: repository globs and tag regexes. */
export interface ImmutableTagRuleSpec {
  readonly repositories: readonly string[];
  readonly patterns: readonly string[];
}

/** Which rule, if any, covers a tag. */
export interface ImmutableTags {
  /** A description of the rule covering `tag` in `repo` (`storage.immutabletags[0] (…)`), or undefined. */
  ruleFor(repo: string, tag: string): string | undefined;
}

/** The rules compiled. @throws SyntaxError for a bad glob or regex (the config check catches them first) */
export function createImmutableTags(rules: readonly ImmutableTagRuleSpec[]): ImmutableTags {
  const compiled = rules.map((r, i) => ({
    repo: globMatcher(r.repositories),
    patterns: r.patterns.map((p) => new RegExp(p)),
    name: `storage.immutabletags[${i}] (repositories ${r.repositories.join(', ')}; tags ${r.patterns.join(', ')})`,
  }));
  const ruleFor = (repo: string, tag: string): string | undefined =>
    compiled.find((r) => r.repo(repo) && r.patterns.some((re) => re.test(tag)))?.name;
  return { ruleFor };
}

/** No tag is immutable. */
export const NO_IMMUTABLE_TAGS: ImmutableTags = { ruleFor: () => undefined };

/** The refusal of a write to an immutable tag. */
export function immutableTagDenied(repo: string, tag: string, rule: string, what: string): RegistryError {
  return new RegistryError('DENIED', `tag ${repo}:${tag} is immutable (${rule}): it cannot be ${what}`, { repository: repo, tag, rule });
}
