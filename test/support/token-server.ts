// A Bearer token server for distribution's token auth: the registry trusts a self-signed
// certificate (made with openssl), and tokens are JWTs signed here with node:crypto (RS256),
// whose `kid` is the libtrust key ID the registry computes from that certificate.
//
//   const tokens = await startTokenServer({ users: { alice: 's3cret' } });
//   const registry = await startRegistry({ token: tokens.registryConfig });
import { createHash, createPrivateKey, createPublicKey, randomBytes, sign } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import { tempDir } from './process.ts';

export interface TokenServer {
  url: string;
  /** pass as startRegistry({ token }) */
  registryConfig: { realm: string; service: string; issuer: string; rootCertBundle: string };
  /** every token request: who asked for which scopes, and whether it was granted */
  requests: { user?: string; scopes: string[]; granted: boolean }[];
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString('base64url');
}

/** libtrust's key ID: base32 of the first 240 bits of sha256(SPKI DER), in groups of four. */
function libtrustKeyId(spkiDer: Buffer): string {
  const bytes = createHash('sha256').update(spkiDer).digest().subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return (out.match(/.{4}/g) ?? []).join(':');
}

export async function startTokenServer(opts: {
  users: Record<string, string>;
  service?: string;
  issuer?: string;
}): Promise<TokenServer> {
  const dir = await tempDir('sealift-token-');
  const key = join(dir.path, 'key.pem');
  const cert = join(dir.path, 'cert.pem');
  await execa('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    '/CN=sealift-test-token',
  ]);
  const privateKey = createPrivateKey(await readFile(key));
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const kid = libtrustKeyId(spki);
  const service = opts.service ?? 'sealift-test-registry';
  const issuer = opts.issuer ?? 'sealift-test-issuer';
  const requests: TokenServer['requests'] = [];

  const server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const scopes = u.searchParams.getAll('scope');
    let user: string | undefined;
    const auth = req.headers.authorization;
    if (auth?.startsWith('Basic ')) {
      const [name = '', pass = ''] = Buffer.from(auth.slice(6), 'base64').toString().split(/:(.*)/s);
      if (opts.users[name] !== pass) {
        requests.push({ user: name, scopes, granted: false });
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"invalid credentials"}');
        return;
      }
      user = name;
    }
    if (!user) {
      requests.push({ scopes, granted: false });
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"authentication required"}');
      return;
    }
    const access = scopes.flatMap((s) => {
      const [type, ...rest] = s.split(':');
      const actions = rest.pop() ?? '';
      return [{ type, name: rest.join(':'), actions: actions.split(',').filter(Boolean) }];
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', typ: 'JWT', kid };
    const claims = {
      iss: issuer,
      sub: user,
      aud: service,
      exp: now + 600,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access,
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const token = `${input}.${b64url(sign('sha256', Buffer.from(input), privateKey))}`;
    requests.push({ user, scopes, granted: true });
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ token, access_token: token, expires_in: 600, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
  const stop = async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    await dir[Symbol.asyncDispose]();
  };
  return {
    url,
    registryConfig: { realm: url, service, issuer, rootCertBundle: await readFile(cert, 'utf8') },
    requests,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
