/**
 * Registry events exactly as registry:2 sends them (notifications/event.go, bridge.go): the JSON of
 * one event, the envelope `{"events":[…]}` and its media type, built from what a handler did
 * (`EventSubject`) and the request it did it for (`EventOrigin`).
 *
 * Field order and omission follow registry:2 2.8's Go structs (`omitempty` drops empty strings, zero
 * sizes and empty lists): target `mediaType, size, digest, length, repository, fromRepository, url,
 * tag, references`; request `id, addr, host, method, useragent` (id, method and useragent always
 * present); `actor` `{}` or `{name}`; source `addr, instanceID`. Deletes carry only repository and
 * digest (or tag). Blob targets have media type `application/octet-stream`, as registry:2's blob store
 * reports it. Manifest references (`events.includereferences`) are the config and layers of an image
 * manifest, or the manifests of an index, as the manifest lists them.
 */
import { randomUUID } from 'node:crypto';
import { describeStored } from '../storage/manifests/manifest-format.js';

/** The Content-Type of every notification request (registry:2 2.8; v3 renamed it `…events.v2+json`). */
export const EVENTS_MEDIA_TYPE = 'application/vnd.docker.distribution.events.v1+json';

/** registry:2's media type for blobs in events: its blob store does not know better. */
export const BLOB_MEDIA_TYPE = 'application/octet-stream';

export type EventAction = 'push' | 'pull' | 'mount' | 'delete' | 'quota';

/**
 * Berth's own event, not registry:2's: a push took a quota (`storage.quotas`) across 85% of one of its
 * limits. The event's `quota` field; its target is the repository and the blob or manifest whose link
 * crossed the mark.
 */
export interface QuotaRecord {
  /** The quota's globs as messages name it: `team/**`. */
  readonly name: string;
  /** Where it is configured: `storage.quotas[0]`. */
  readonly key: string;
  readonly repositories: readonly string[];
  /** The folder of whole name components its globs start with (`team`; '' for the whole registry). */
  readonly namespace: string;
  readonly kind: 'storage' | 'repositories';
  /** Usage after the push (bytes, or repositories), and before it. */
  readonly usage: number;
  readonly previous: number;
  readonly limit: number;
  /** The share of the limit whose crossing this is (0.85). */
  readonly threshold: number;
}

/** What happened: a manifest pushed or pulled, a blob pushed, pulled or mounted, or something deleted. */
export type EventSubject =
  | {
      readonly kind: 'manifest';
      readonly action: 'push' | 'pull';
      readonly repository: string;
      readonly digest: string;
      /** The manifest's bytes (for its size, and its references when asked for). */
      readonly content: Uint8Array;
      /** Its media type; read from `content` when not given. */
      readonly mediaType?: string;
      /** The tag it was pushed or pulled by, if any. */
      readonly tag?: string;
    }
  | {
      readonly kind: 'blob';
      readonly action: 'push' | 'pull' | 'mount';
      readonly repository: string;
      readonly digest: string;
      readonly size: number;
      /** A mount's source repository (none for a mount without `from`). */
      readonly fromRepository?: string;
    }
  | { readonly kind: 'delete'; readonly repository: string; readonly digest: string }
  | { readonly kind: 'delete'; readonly repository: string; readonly tag: string }
  | { readonly kind: 'quota'; readonly repository: string; readonly digest: string; readonly quota: QuotaRecord };

/** registry:2's RequestRecord. */
export interface RequestRecord {
  readonly id: string;
  /** The client's address: the first X-Forwarded-For or X-Real-Ip address, else `ip:port` of the connection. */
  readonly addr: string;
  /** The Host header. */
  readonly host: string;
  readonly method: string;
  readonly useragent: string;
}

/** The request an event comes from. */
export interface EventOrigin {
  readonly request: RequestRecord;
  /** The authenticated user, if any (registry:2's `actor.name`). */
  readonly actor: string | undefined;
  /** The URL of a registry path (`/v2/<name>/blobs/<digest>`), as the request's Location headers would give it. */
  readonly url: (path: string) => string;
}

/** Where the HTTP handlers report what they did (notifier.ts implements it). */
export interface EventSink {
  /**
   * Queues the event for every endpoint that does not ignore it. Resolves at once for pulls, and once
   * the event is durable for pushes, mounts and deletes. Never rejects.
   */
  write(subject: EventSubject, origin: EventOrigin): Promise<void>;
}

/** registry:2's SourceRecord: which registry instance generated the event. */
export interface SourceRecord {
  /** `hostname:port` of this instance. */
  readonly addr: string;
  /** Changes at every start. */
  readonly instanceID: string;
}

/** A descriptor as events carry it. */
export interface EventDescriptor {
  readonly mediaType?: string;
  readonly size?: number;
  readonly digest?: string;
  readonly urls?: readonly string[];
  readonly annotations?: Readonly<Record<string, string>>;
  readonly platform?: Readonly<Record<string, unknown>>;
}

/** One event as sent. */
export interface RegistryEvent {
  readonly id: string;
  readonly timestamp: string;
  readonly action: EventAction;
  readonly target: EventDescriptor & {
    readonly length?: number;
    readonly repository?: string;
    readonly fromRepository?: string;
    readonly url?: string;
    readonly tag?: string;
    readonly references?: readonly EventDescriptor[];
  };
  /** Only in `quota` events. */
  readonly quota?: QuotaRecord;
  readonly request: Partial<RequestRecord> & Pick<RequestRecord, 'id' | 'method' | 'useragent'>;
  readonly actor: { readonly name?: string };
  readonly source: Partial<SourceRecord>;
}

export interface BuildOptions {
  readonly source: SourceRecord;
  /** `notifications.events.includereferences` */
  readonly includeReferences: boolean;
  /** For tests; defaults to a random UUID and now. */
  readonly id?: string;
  readonly now?: Date;
}

/** The event for `subject`, done by `origin`'s request. Never throws on odd manifest content. */
export function buildEvent(subject: EventSubject, origin: EventOrigin, o: BuildOptions): RegistryEvent {
  const { request } = origin;
  return {
    id: o.id ?? randomUUID(),
    timestamp: (o.now ?? new Date()).toISOString(),
    action: subject.kind === 'delete' || subject.kind === 'quota' ? subject.kind : subject.action,
    target: compact(targetOf(subject, origin, o.includeReferences)),
    ...(subject.kind === 'quota' && { quota: subject.quota }),
    request: { id: request.id, ...compact({ addr: request.addr, host: request.host }), method: request.method, useragent: request.useragent },
    actor: compact({ name: origin.actor }),
    source: compact({ addr: o.source.addr, instanceID: o.source.instanceID }),
  };
}

function targetOf(subject: EventSubject, origin: EventOrigin, includeReferences: boolean): RegistryEvent['target'] {
  const { repository } = subject;
  switch (subject.kind) {
    case 'manifest': {
      const size = subject.content.byteLength;
      return {
        mediaType: subject.mediaType ?? describeStored(subject.content).mediaType,
        size,
        digest: subject.digest,
        length: size,
        repository,
        url: origin.url(`/v2/${repository}/manifests/${subject.digest}`),
        ...(subject.tag !== undefined && { tag: subject.tag }),
        ...(includeReferences && { references: manifestReferences(subject.content) }),
      };
    }
    case 'blob':
      return {
        mediaType: BLOB_MEDIA_TYPE,
        size: subject.size,
        digest: subject.digest,
        length: subject.size,
        repository,
        ...(subject.fromRepository !== undefined && { fromRepository: subject.fromRepository }),
        url: origin.url(`/v2/${repository}/blobs/${subject.digest}`),
      };
    case 'delete':
      return 'tag' in subject ? { repository, tag: subject.tag } : { digest: subject.digest, repository };
    case 'quota':
      return { digest: subject.digest, repository };
  }
}

/**
 * What a manifest refers to, as registry:2's `Manifest.References()`: an image manifest's config then
 * layers, an index's manifests. Empty for content that is not such a manifest.
 */
export function manifestReferences(content: Uint8Array): EventDescriptor[] {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(content).toString('utf8'));
  } catch {
    return [];
  }
  if (!isObject(doc)) return [];
  const listed = Array.isArray(doc['manifests'])
    ? doc['manifests']
    : [doc['config'], ...(Array.isArray(doc['layers']) ? doc['layers'] : [])];
  return listed.filter(isObject).map(eventDescriptor);
}

function eventDescriptor(d: Record<string, unknown>): EventDescriptor {
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  return compact({
    mediaType: str(d['mediaType']),
    size: typeof d['size'] === 'number' ? d['size'] : undefined,
    digest: str(d['digest']),
    urls: Array.isArray(d['urls']) ? d['urls'].filter((u): u is string => typeof u === 'string') : undefined,
    annotations: isObject(d['annotations']) ? stringRecord(d['annotations']) : undefined,
    platform: isObject(d['platform']) ? d['platform'] : undefined,
  });
}

/**
 * The request body registry:2 sends for one event: the envelope, indented with three spaces as Go's
 * `json.MarshalIndent(envelope, "", "   ")` writes it.
 */
export function envelopeBody(events: readonly unknown[]): string {
  return JSON.stringify({ events }, null, 3);
}

/** Drops what Go's `omitempty` drops: undefined, '', 0, empty lists and empty maps. */
function compact<T extends object>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined || v === '' || v === 0) continue;
    if (Array.isArray(v) && v.length === 0) continue;
    if (isObject(v) && Object.keys(v).length === 0) continue;
    out[k] = v;
  }
  return out as { [K in keyof T]?: Exclude<T[K], undefined> };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringRecord(o: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).filter((e): e is [string, string] => typeof e[1] === 'string'));
}
