// undici's Agent and its request API, loaded from their own modules: undici's index also loads
// fetch, WebSocket, EventSource, caches and mocks, none of which sealift uses, and runs them at
// every start of the single executable.
import type { Agent as UndiciAgent, Dispatcher } from 'undici';
import AgentModule from 'undici/lib/dispatcher/agent.js';
import requestModule from 'undici/lib/api/api-request.js';

export const Agent = AgentModule as typeof UndiciAgent;
export type Agent = UndiciAgent;
export type { Dispatcher };

const requestApi = requestModule as unknown as (
  this: Dispatcher,
  opts: Dispatcher.RequestOptions,
) => Promise<Dispatcher.ResponseData>;

/** undici's request(url, opts) on an explicit dispatcher (what its index wraps around the same function). */
export function request(
  url: string,
  opts: Omit<Dispatcher.RequestOptions, 'origin' | 'path'> & { dispatcher: Dispatcher },
): Promise<Dispatcher.ResponseData> {
  const u = new URL(url);
  const { dispatcher, ...rest } = opts;
  return requestApi.call(dispatcher, { ...rest, origin: u.origin, path: `${u.pathname}${u.search}` });
}
