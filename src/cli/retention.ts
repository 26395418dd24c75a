/**
 * Retention from the configuration: `storage.maintenance.retention` compiled into the collector's
 * RetentionOptions (gc/retention/), with deletions reported as registry:2 delete notifications, and
 * the `storage.immutabletags` rules that keep tags from it.
 */
import { randomUUID } from 'node:crypto';
import type { Config } from '../config/schema.js';
import type { Deletion, RetentionOptions } from '../gc/retention/retention.js';
import type { RetentionPolicy } from '../gc/retention/policy.js';
import type { EventSink } from '../notifications/event.js';
import { globMatcher } from '../storage/repo-glob.js';
import { type Registry, createImmutableTags } from '../storage/registry.js';

/** The collector's retention options, or undefined when no policy is configured. */
export function retentionFor(config: Config, registry: Pick<Registry, 'repository'>, events?: EventSink): RetentionOptions | undefined {
  const retention = config.storage.maintenance.retention;
  if (!retention) return undefined;
  const policies: RetentionPolicy[] = retention.policies.map((p, index) => ({
    index,
    matches: globMatcher(p.repositories),
    deleteUntagged: p.deleteuntagged,
    deleteReferrers: p.deletereferrers,
    keepTags: p.keeptags.map((r) => ({
      patterns: r.patterns.map((re) => new RegExp(re)),
      mostRecentlyPushed: r.mostrecentlypushed,
      mostRecentlyPulled: r.mostrecentlypulled,
      pushedWithinMs: r.pushedwithinMs,
      pulledWithinMs: r.pulledwithinMs,
    })),
  }));
  const immutable = createImmutableTags(config.storage.immutabletags);
  return {
    policies,
    delayMs: retention.delayMs,
    dryRun: retention.dryrun,
    immutable: (repo, tag) => immutable.ruleFor(repo, tag),
    registry,
    ...(events && { onDeleted: (d: Deletion) => notifyDeleted(events, d) }),
  };
}

/** registry:2's delete event for a deletion no client asked for: the request names Berth's retention. */
async function notifyDeleted(events: EventSink, d: Deletion): Promise<void> {
  const subject = d.kind === 'tag'
    ? { kind: 'delete' as const, repository: d.repository, tag: d.tag ?? '' }
    : { kind: 'delete' as const, repository: d.repository, digest: d.digest };
  const request = { id: randomUUID(), addr: '', host: '', method: 'DELETE', useragent: 'berth-retention' };
  await events.write(subject, { request, actor: undefined, url: (path) => path });
}
