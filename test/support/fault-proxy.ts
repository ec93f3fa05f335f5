// A loopback HTTP proxy in front of a registry that records every request and injects faults:
// connection resets, truncated bodies, 500s and 429s with Retry-After, a connection cut in the
// middle of the request bodies (an upload cut midway), and random resets and truncations at
// given rates (seeded, so a run can be repeated).
//
//   const proxy = await startFaultProxy(registry.host);
//   proxy.inject({ fault: 'truncate', match: /\/blobs\/sha256:/, times: 2 });
//   proxy.inject({ fault: 'cut', match: /^PATCH /, afterBytes: 100 << 20 });
//   ... point the client at proxy.host ...
//   proxy.requests   // [{ method, path, status, fault?, bytes, received }]
//
// With `bufferRequests` the proxy forwards a request only once its body is complete, as nginx
// does by default (proxy_request_buffering): a cut request never reaches the registry.
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Fault = 'reset' | 'truncate' | '500' | '429' | 'cut';

export interface FaultRule {
  fault: Fault;
  /** tested against `METHOD path` (e.g. `GET /v2/istio/pilot/blobs/sha256:...`) */
  match?: RegExp;
  /** how many matching requests get the fault (default 1) */
  times?: number;
  /** seconds sent in Retry-After with 429 (default 1) */
  retryAfter?: number;
  /** 'cut': the connection is cut once this many request-body bytes of matching requests arrived (all of them together) */
  afterBytes?: number;
}

export interface FaultProxyOptions {
  /** forward a request only when its body is complete (a cut request never reaches the registry) */
  bufferRequests?: boolean;
  /** faults at random: the share of requests reset, and of responses with a body truncated */
  random?: { reset: number; truncate: number; seed?: number };
}

export interface RecordedRequest {
  method: string;
  path: string;
  status?: number;
  fault?: Fault;
  /** bytes of response body sent to the client */
  bytes: number;
  /** bytes of request body received from the client */
  received: number;
}

export interface FaultProxy {
  host: string;
  requests: RecordedRequest[];
  inject(rule: FaultRule): void;
  /** faults still pending */
  pending(): number;
  /** request-body bytes received from clients so far (what they sent) */
  received(): number;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** mulberry32: a small seeded generator, so that a random fault run can be repeated */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function startFaultProxy(upstream: string, opts: FaultProxyOptions = {}): Promise<FaultProxy> {
  const [upHost = '127.0.0.1', upPort = '80'] = upstream.split(':');
  const rules: (FaultRule & { left: number })[] = [];
  const requests: RecordedRequest[] = [];
  const cuts: (FaultRule & { seen: number; done: boolean })[] = [];
  const random = opts.random ? seeded(opts.random.seed ?? 1) : undefined;

  const take = (line: string): FaultRule | undefined => {
    const r = rules.find((x) => x.left > 0 && (!x.match || x.match.test(line)));
    if (r) r.left--;
    return r;
  };
  const pick = (req: IncomingMessage, line: string): FaultRule | undefined => {
    const rule = take(line);
    if (rule || !random || !opts.random) return rule;
    const r = random();
    if (r < opts.random.reset) return { fault: 'reset' };
    if (r < opts.random.reset + opts.random.truncate && req.method !== 'HEAD') return { fault: 'truncate' };
    return undefined;
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const line = `${req.method} ${req.url}`;
    const rec: RecordedRequest = { method: req.method ?? '', path: req.url ?? '', bytes: 0, received: 0 };
    requests.push(rec);
    const rule = pick(req, line);
    if (rule) rec.fault = rule.fault;
    const cut = cuts.find((c) => !c.done && (!c.match || c.match.test(line)));
    if (rule?.fault === 'reset') {
      req.socket.destroy();
      return;
    }
    if (rule?.fault === '500' || rule?.fault === '429') {
      req.resume();
      rec.status = Number(rule.fault);
      const body = JSON.stringify({
        errors: [{ code: rule.fault === '429' ? 'TOOMANYREQUESTS' : 'UNKNOWN', message: 'injected by fault proxy' }],
      });
      res.writeHead(rec.status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        ...(rule.fault === '429' ? { 'retry-after': String(rule.retryAfter ?? 1) } : {}),
      });
      res.end(body);
      return;
    }
    const forward = () =>
      httpRequest(
        { host: upHost, port: Number(upPort), method: req.method, path: req.url, headers: req.headers },
        (upRes) => respond(upRes),
      );
    const respond = (upRes: IncomingMessage) => {
      rec.status = upRes.statusCode;
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      const hasBody = req.method !== 'HEAD' && Number(upRes.headers['content-length'] ?? 1) > 0;
      if (rule?.fault === 'truncate' && !hasBody) rec.fault = undefined;
      if (rule?.fault === 'truncate' && hasBody) {
        const limit = Math.max(1, Math.floor(Number(upRes.headers['content-length'] ?? 2) / 2));
        upRes.on('data', (chunk: Buffer) => {
          if (rec.bytes >= limit) return;
          const part = chunk.subarray(0, limit - rec.bytes);
          rec.bytes += part.length;
          if (rec.bytes >= limit) {
            upRes.destroy();
            // cut the connection mid-body once what was written reached the socket
            res.write(part, () => res.socket?.destroy());
          } else if (!res.write(part)) {
            upRes.pause();
            res.once('drain', () => upRes.resume());
          }
        });
        return;
      }
      upRes.on('data', (c: Buffer) => (rec.bytes += c.length));
      upRes.pipe(res);
    };
    // the request body: counted, cut when a 'cut' rule's byte count is reached, streamed or buffered
    const held: Buffer[] = [];
    let up: ReturnType<typeof forward> | undefined = opts.bufferRequests ? undefined : forward();
    up?.on('error', () => res.socket?.destroy());
    req.on('data', (c: Buffer) => {
      rec.received += c.length;
      if (cut && !cut.done) {
        cut.seen += c.length;
        if (cut.seen >= (cut.afterBytes ?? 0)) {
          cut.done = true;
          rec.fault = 'cut';
          const keep = c.subarray(0, c.length - (cut.seen - (cut.afterBytes ?? 0)));
          if (up) up.write(keep, () => (up?.destroy(), req.socket.destroy()));
          else req.socket.destroy();
          return;
        }
      }
      if (up) {
        if (!up.write(c)) {
          req.pause();
          up.once('drain', () => req.resume());
        }
      } else held.push(c);
    });
    req.on('end', () => {
      if (rec.fault === 'cut') return;
      if (!up) {
        up = forward();
        up.on('error', () => res.socket?.destroy());
        for (const c of held) up.write(c);
      }
      up.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const stop = async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return {
    host: `127.0.0.1:${port}`,
    requests,
    inject: (rule) =>
      rule.fault === 'cut'
        ? cuts.push({ ...rule, seen: 0, done: false })
        : rules.push({ ...rule, left: rule.times ?? 1 }),
    pending: () => rules.reduce((n, r) => n + r.left, 0) + cuts.filter((c) => !c.done).length,
    received: () => requests.reduce((n, r) => n + r.received, 0),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
