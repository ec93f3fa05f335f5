// A loopback HTTP proxy in front of a registry that records every request and injects faults:
// connection resets, truncated bodies, 500s and 429s with Retry-After.
//
//   const proxy = await startFaultProxy(registry.host);
//   proxy.inject({ fault: 'truncate', match: /\/blobs\/sha256:/, times: 2 });
//   ... point the client at proxy.host ...
//   proxy.requests   // [{ method, path, status, fault? }]
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Fault = 'reset' | 'truncate' | '500' | '429';

export interface FaultRule {
  fault: Fault;
  /** tested against `METHOD path` (e.g. `GET /v2/istio/pilot/blobs/sha256:...`) */
  match?: RegExp;
  /** how many matching requests get the fault (default 1) */
  times?: number;
  /** seconds sent in Retry-After with 429 (default 1) */
  retryAfter?: number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  status?: number;
  fault?: Fault;
  /** bytes of response body sent to the client */
  bytes: number;
}

export interface FaultProxy {
  host: string;
  requests: RecordedRequest[];
  inject(rule: FaultRule): void;
  /** faults still pending */
  pending(): number;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const [upHost = '127.0.0.1', upPort = '80'] = upstream.split(':');
  const rules: (FaultRule & { left: number })[] = [];
  const requests: RecordedRequest[] = [];

  const take = (line: string): FaultRule | undefined => {
    const r = rules.find((x) => x.left > 0 && (!x.match || x.match.test(line)));
    if (r) r.left--;
    return r;
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const line = `${req.method} ${req.url}`;
    const rec: RecordedRequest = { method: req.method ?? '', path: req.url ?? '', bytes: 0 };
    requests.push(rec);
    const rule = take(line);
    if (rule) rec.fault = rule.fault;
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
    const up = httpRequest(
      { host: upHost, port: Number(upPort), method: req.method, path: req.url, headers: req.headers },
      (upRes) => {
        rec.status = upRes.statusCode;
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        if (rule?.fault === 'truncate') {
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
      },
    );
    up.on('error', () => res.socket?.destroy());
    req.pipe(up);
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
    inject: (rule) => rules.push({ ...rule, left: rule.times ?? 1 }),
    pending: () => rules.reduce((n, r) => n + r.left, 0),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
