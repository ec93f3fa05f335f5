// Image references, by the distribution reference grammar (distribution/reference):
//
//   reference            := name [ ":" tag ] [ "@" digest ]
//   name                 := [domain '/'] remote-name
//   domain               := host [ ":" port-number ]
//   host                 := domain-name | IPv4address | "[" IPv6address "]"
//   domain-name          := domain-component ['.' domain-component]*
//   domain-component     := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
//   port-number          := /[0-9]+/
//   remote-name          := path-component ['/' path-component]*
//   path-component       := alpha-numeric [separator alpha-numeric]*
//   alpha-numeric        := /[a-z0-9]+/
//   separator            := /[_.]|__|[-]+/
//   tag                  := /[\w][\w.-]{0,127}/
//   digest               := algorithm ":" hex   (sha256: 64 lowercase hex)
//
// Parsing is strict; normalization (docker.io, library/) is a separate step, as upstream.
import { SealiftError } from '../errors.ts';

const optional = (...r: string[]) => `(?:${r.join('')})?`;
const group = (...r: string[]) => `(?:${r.join('')})`;
const capture = (...r: string[]) => `(${r.join('')})`;
const anchored = (...r: string[]) => `^${r.join('')}$`;

const alphanumeric = '[a-z0-9]+';
const separator = '(?:[._]|__|[-]+)';
const pathComponent = alphanumeric + group(separator, alphanumeric) + '*';
const domainNameComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const ipv6 = '\\[(?:[a-fA-F0-9:]+)\\]';
const host = group(domainNameComponent, '(?:\\.', domainNameComponent, ')*', '|', ipv6);
const domainAndPort = host + optional(':[0-9]+');
const tagPattern = '[\\w][\\w.-]{0,127}';
const digestPattern = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';
const remoteName = pathComponent + '(?:/' + pathComponent + ')*';
const namePattern = optional(domainAndPort, '/') + remoteName;

const REFERENCE_RE = new RegExp(
  anchored(capture(namePattern), optional(':', capture(tagPattern)), optional('@', capture(digestPattern))),
);
const DOMAIN_RE = new RegExp(anchored(domainAndPort));
const TAG_RE = new RegExp(anchored(tagPattern));
const SHA256_RE = /^sha256:[a-f0-9]{64}$/;

export const NAME_TOTAL_LENGTH_MAX = 255;
export const DEFAULT_DOMAIN = 'docker.io';
const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
const OFFICIAL_REPO_PREFIX = 'library/';

export type Digest = string & { readonly __brand: 'Digest' };

/** A parsed reference. `registry` is empty only for a strict parse of a familiar name. */
export interface ImageReference {
  /** registry host with optional port, e.g. `docker.io`, `10.61.3.31:35000`, `localhost:5000` */
  readonly registry: string;
  /** repository path inside the registry, e.g. `library/nginx`, `istio/pilot` */
  readonly repository: string;
  readonly tag?: string;
  readonly digest?: Digest;
  /** the text this was parsed from, for messages */
  readonly original: string;
}

export function parseDigest(s: string, where?: string): Digest {
  if (!SHA256_RE.test(s)) {
    throw new SealiftError(
      'REF_INVALID',
      `invalid digest "${s}"${where ? ` (${where})` : ''}: expected sha256:<64 lowercase hex>`,
    );
  }
  return s as Digest;
}

export function isDigest(s: string): s is Digest {
  return SHA256_RE.test(s);
}

/**
 * Splits the first path component off as the domain when it looks like one: it contains a '.' or
 * a ':', or it is 'localhost', or it has upper case (which a repository cannot). Otherwise the
 * whole string is a repository on the default domain (as distribution's splitDockerDomain).
 */
function looksLikeDomain(first: string): boolean {
  return first.includes('.') || first.includes(':') || first === 'localhost' || first.toLowerCase() !== first;
}

function splitDomain(name: string): { domain: string; remainder: string } {
  const i = name.indexOf('/');
  if (i === -1) return { domain: '', remainder: name };
  const first = name.slice(0, i);
  if (looksLikeDomain(first)) {
    return { domain: first, remainder: name.slice(i + 1) };
  }
  return { domain: '', remainder: name };
}

function fail(input: string, where: string | undefined, reason: string, hint?: string): never {
  throw new SealiftError('REF_INVALID', `invalid image reference "${input}"${where ? ` (${where})` : ''}: ${reason}`, {
    hint: hint ?? 'Fix the value where it is set, or exclude it with excludeImages in the environment file.',
    details: { reference: input, where },
  });
}

/** Strict parse: the reference as written; no domain or library/ is added. */
export function parseImageReference(input: string, where?: string): ImageReference {
  const s = input.trim();
  if (s === '') fail(input, where, 'it is empty');
  const m = REFERENCE_RE.exec(s);
  if (!m) {
    if (REFERENCE_RE.test(s.toLowerCase())) fail(input, where, 'repository names must be lowercase');
    if (s.includes('://')) fail(input, where, 'a reference has no scheme (drop the "http://" part)');
    fail(input, where, 'it does not match the reference grammar [registry/]repository[:tag][@sha256:digest]');
  }
  const [, name = '', tag, digest] = m;
  if (name.length > NAME_TOTAL_LENGTH_MAX)
    fail(input, where, `the name is longer than ${NAME_TOTAL_LENGTH_MAX} characters`);
  const { domain, remainder } = splitDomain(name);
  if (remainder.toLowerCase() !== remainder) fail(input, where, 'repository names must be lowercase');
  if (domain && !DOMAIN_RE.test(domain)) fail(input, where, `"${domain}" is not a valid registry host`);
  if (digest !== undefined && !SHA256_RE.test(digest))
    fail(input, where, 'only sha256 digests of 64 lowercase hex are supported');
  const ref: ImageReference = {
    registry: domain,
    repository: remainder,
    original: input,
    ...(tag !== undefined ? { tag } : {}),
    ...(digest !== undefined ? { digest: digest as Digest } : {}),
  };
  return ref;
}

/** The registry a runtime pulls a (strictly parsed) name from: docker.io when none, index.docker.io as docker.io. */
export function normalizeRegistry(registry: string): string {
  return registry === '' || registry === LEGACY_DEFAULT_DOMAIN ? DEFAULT_DOMAIN : registry;
}

/**
 * Normalizes a parsed reference as a runtime resolves it (distribution's ParseNormalizedNamed):
 * `nginx` and `docker.io/nginx` -> `docker.io/library/nginx`, `index.docker.io/x/y` -> `docker.io/x/y`.
 * Idempotent: a normalized reference comes back unchanged.
 */
export function normalizeReference(ref: ImageReference): ImageReference {
  const registry = normalizeRegistry(ref.registry);
  const repository =
    registry === DEFAULT_DOMAIN && !ref.repository.includes('/')
      ? OFFICIAL_REPO_PREFIX + ref.repository
      : ref.repository;
  return { ...ref, registry, repository };
}

/** Parse and normalize: `nginx` -> `docker.io/library/nginx`, `index.docker.io/x` -> `docker.io/x`. */
export function normalizeImageReference(input: string, where?: string): ImageReference {
  return normalizeReference(parseImageReference(input, where));
}

/** Normalized references without tag or digest get `latest`, as a runtime pulling them would. */
export function withDefaultTag(ref: ImageReference): ImageReference {
  return ref.tag === undefined && ref.digest === undefined ? { ...ref, tag: 'latest' } : ref;
}

/** `host[:port]` as the grammar's domain allows it (no scheme, no path). */
export function isRegistryHost(s: string): boolean {
  return DOMAIN_RE.test(s);
}

/**
 * A value that names a registry on its own (`docker.io`, `quay.io`, `10.61.3.31:35000`,
 * `localhost`): a domain by the grammar that would also be split off as one in front of a path
 * (splitDomain), so `istio` alone is a repository, never a host.
 */
export function isBareRegistryHost(s: string): boolean {
  return DOMAIN_RE.test(s) && looksLikeDomain(s);
}

export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

export function repositoryName(ref: ImageReference): string {
  return ref.registry ? `${ref.registry}/${ref.repository}` : ref.repository;
}

/** Canonical string: registry/repository[:tag][@digest] (tag kept beside the digest: sealift pushes the tag). */
export function formatImageReference(ref: ImageReference): string {
  return `${repositoryName(ref)}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** Familiar form, as `docker` prints it: `docker.io/library/nginx:1` -> `nginx:1`. */
export function familiarImageReference(ref: ImageReference): string {
  let name = repositoryName(ref);
  if (ref.registry === DEFAULT_DOMAIN) {
    name =
      ref.repository.startsWith(OFFICIAL_REPO_PREFIX) && ref.repository.split('/').length === 2
        ? ref.repository.slice(OFFICIAL_REPO_PREFIX.length)
        : ref.repository;
  }
  return `${name}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** The string a registry API call names: the digest if pinned, else the tag (default latest). */
export function manifestSelector(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? 'latest';
}
