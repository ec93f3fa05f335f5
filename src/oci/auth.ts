// Registry auth, per endpoint: the WWW-Authenticate challenge (anonymous, Basic, Bearer), tokens
// from the challenge's realm cached per scope set, and the credential (credentials.ts) looked up
// once. `request` is a transport `send` that negotiates: on a 401 it reads the challenge, gets a
// token or a Basic header, and repeats once. Secrets never reach messages: the user and where
// the credential came from do.
import { Readable } from 'node:stream';
import { SealiftError } from '../errors.ts';
import { redactUrl } from '../redact.ts';
import type { Credential, CredentialLookup } from './credentials.ts';
import { discard, header, readLimited, registryError, send, type HttpResponse, type SendOptions } from './transport.ts';

const TOKEN_BODY_LIMIT = 64 * 1024;

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `Bearer realm="...",service="...",scope="..."` (one challenge; the first wins). */
export function parseChallenge(value: string): Challenge | undefined {
  const m = /^\s*(\w+)\s*(.*)$/s.exec(value);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?/g;
  for (let p = re.exec(m[2] ?? ''); p; p = re.exec(m[2] ?? '')) {
    params[(p[1] ?? '').toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return { scheme: (m[1] ?? '').toLowerCase(), params };
}

function basicHeader(c: Credential): string {
  return `Basic ${Buffer.from(`${c.username ?? ''}:${c.password ?? ''}`).toString('base64')}`;
}

/** What every request of one endpoint shares: TLS, user agent, retry policy, events. */
export type EndpointSendOptions = Pick<SendOptions, 'tls' | 'userAgent' | 'retry' | 'onEvent'>;

/** Auth state of one registry endpoint (a host or a mirror). */
export class RegistryAuth {
  private basic: string | undefined;
  private readonly tokens = new Map<string, Promise<string>>();
  private challenge: Challenge | undefined;
  private credential: Promise<Credential | undefined> | undefined;
  private readonly registry: string;
  private readonly origin: string;
  private readonly lookup: CredentialLookup;
  private readonly sendOptions: EndpointSendOptions;

  /** `registry` is the name credentials are stored under; `origin` where its realm URLs are relative to */
  constructor(registry: string, origin: string, lookup: CredentialLookup, sendOptions: EndpointSendOptions) {
    this.registry = registry;
    this.origin = origin;
    this.lookup = lookup;
    this.sendOptions = sendOptions;
  }

  private getCredential(): Promise<Credential | undefined> {
    this.credential ??= this.lookup(this.registry);
    return this.credential;
  }

  private async authHeader(scopes: string[]): Promise<string | undefined> {
    if (!this.challenge) return undefined;
    if (this.challenge.scheme === 'basic') return this.basic;
    if (this.challenge.scheme !== 'bearer') return undefined;
    const key = [...scopes].sort().join(' ');
    let p = this.tokens.get(key);
    if (!p) {
      p = this.fetchToken(this.challenge, scopes);
      this.tokens.set(key, p);
      p.catch(() => this.tokens.delete(key));
    }
    return `Bearer ${await p}`;
  }

  private async fetchToken(ch: Challenge, scopes: string[]): Promise<string> {
    const realm = ch.params.realm;
    if (!realm)
      throw new SealiftError('REGISTRY_ERROR', `registry ${this.registry} sent a Bearer challenge without a realm`);
    const cred = await this.getCredential();
    const u = new URL(realm, this.origin);
    const op = `token for ${this.registry}`;
    let res: HttpResponse;
    const describe = (r: HttpResponse) => registryError(r, 'GET', this.registry, op);
    if (cred?.identityToken) {
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: cred.identityToken,
        client_id: 'sealift',
      });
      if (ch.params.service) form.set('service', ch.params.service);
      if (scopes.length) form.set('scope', scopes.join(' '));
      res = await send(
        {
          ...this.sendOptions,
          method: 'POST',
          url: u.toString(),
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: Buffer.from(form.toString()),
          op,
          host: u.host,
        },
        describe,
      );
    } else {
      if (ch.params.service) u.searchParams.set('service', ch.params.service);
      for (const s of scopes) u.searchParams.append('scope', s);
      res = await send(
        {
          ...this.sendOptions,
          method: 'GET',
          url: u.toString(),
          ...(cred ? { auth: basicHeader(cred) } : {}),
          op,
          host: u.host,
        },
        describe,
      );
    }
    if (res.status === 401 || res.status === 403) {
      await discard(res);
      throw this.error(cred, `its token server ${redactUrl(u.toString())} answered ${res.status}`);
    }
    if (res.status !== 200) throw await describe(res);
    const j = JSON.parse((await readLimited(res.body, TOKEN_BODY_LIMIT)).toString('utf8')) as {
      token?: string;
      access_token?: string;
    };
    const token = j.token ?? j.access_token;
    if (!token)
      throw new SealiftError('REGISTRY_ERROR', `the token server of ${this.registry} answered without a token`);
    return token;
  }

  private error(cred: Credential | undefined, why: string): SealiftError {
    return new SealiftError(
      'AUTH_FAILED',
      cred
        ? `registry ${this.registry} refused the credentials of user "${cred.username ?? '<token>'}" from ${cred.source}: ${why}`
        : `registry ${this.registry} requires credentials and none were found: ${why}`,
      {
        details: { registry: this.registry },
        hint: `Log in with "docker login ${this.registry}" (or set REGISTRY_AUTH_FILE), and check the user may access this repository.`,
      },
    );
  }

  /** A request that negotiates auth: on a 401 it reads the challenge, gets a token or Basic header, and repeats once. */
  async request(
    o: Omit<SendOptions, keyof EndpointSendOptions | 'auth'> & { scopes: string[] },
    describe?: (res: HttpResponse) => Promise<SealiftError>,
  ): Promise<HttpResponse> {
    let auth = await this.authHeader(o.scopes);
    for (let round = 0; ; round++) {
      const res = await send({ ...this.sendOptions, ...o, ...(auth ? { auth } : {}) }, describe);
      if (res.status !== 401) {
        if (res.status === 403 && auth) {
          await discard(res);
          throw this.error(await this.getCredential(), `403 denied to ${o.method} ${redactUrl(res.url)}`);
        }
        return res;
      }
      await discard(res);
      const challenge = parseChallenge(header(res, 'www-authenticate') ?? '');
      const cred = await this.getCredential();
      if (round > 0 || !challenge || (challenge.scheme !== 'basic' && challenge.scheme !== 'bearer')) {
        throw this.error(cred, `401 to ${o.method} ${redactUrl(res.url)}`);
      }
      if (challenge.scheme === 'basic' && !cred) throw this.error(undefined, 'it asks for Basic auth');
      this.challenge = challenge;
      if (challenge.scheme === 'basic' && cred) this.basic = basicHeader(cred);
      this.tokens.clear();
      auth = await this.authHeader(o.scopes);
      if (o.body instanceof Readable) {
        // a token expired during a long transfer: the stream is spent, so the enclosing upload
        // retries with its source opened again and the fresh token now cached
        throw new SealiftError(
          'NETWORK_ERROR',
          `${o.op}: registry ${this.registry} asked for auth again during a streamed upload`,
          { details: { registry: this.registry, temporary: true } },
        );
      }
    }
  }
}
