// The flag convention (src/commands/flags.ts): registry addresses are checked as HOST[:PORT]
// before any URL is built from them, and the transport flags take the host they apply to, which
// a command with one registry of its own lets the user leave out.
import { describe, expect, it } from 'vitest';
import { registryHost, registryHostsFromFlags, siteRegistryFromFlags } from '../../src/commands/flags.ts';

describe('registryHost', () => {
  it('takes names, IPv4 and [IPv6] with or without a port', () => {
    for (const h of ['localhost', 'registry.corp', '10.61.3.31:35000', '[::1]:5000', 'a-b.c:1', 'x:65535'])
      expect(registryHost(h, '--registry')).toBe(h);
  });

  it('refuses ports out of range, URLs, spaces and empty parts as USAGE naming the flag', () => {
    const bad: [string, string][] = [
      ['127.0.0.1:99999', 'port 1-65535, not 99999'],
      ['127.0.0.1:0', 'not 0'],
      ['host:abc', 'not a registry address'],
      [':5000', 'not a registry address'],
      ['site registry:5000', 'not a registry address'],
      ['-host', 'not a registry address'],
      ['http://10.61.3.31:35000', 'takes HOST:PORT, not a URL'],
    ];
    for (const [h, text] of bad) {
      expect(() => registryHost(h, '--to'), h).toThrow(text);
      expect(() => registryHost(h, '--to'), h).toThrow(expect.objectContaining({ code: 'USAGE' }));
    }
  });
});

describe('siteRegistryFromFlags', () => {
  const host = '10.61.3.31:35000';
  it('a flag without HOST, or with the registry as HOST, is about the registry', () => {
    expect(siteRegistryFromFlags(host, { plainHttp: [''] })).toMatchObject({ host, plainHttp: true });
    expect(siteRegistryFromFlags(host, { plainHttp: [host] })).toMatchObject({ host, plainHttp: true });
    expect(siteRegistryFromFlags(host, { insecure: [''] })).toMatchObject({ insecure: true });
    expect(siteRegistryFromFlags(host, { caFile: ['/etc/ssl/ca.pem'] })).toMatchObject({ caFile: '/etc/ssl/ca.pem' });
    expect(siteRegistryFromFlags(host, { caFile: [`${host}=/etc/ssl/ca.pem`] })).toMatchObject({
      caFile: '/etc/ssl/ca.pem',
    });
    expect(siteRegistryFromFlags(host, {})).toEqual({ host, others: { plainHttp: [], insecure: [], caFile: [] } });
  });

  it('another host is refused where the command has no other registry, and returned where it has (mirror)', () => {
    expect(() => siteRegistryFromFlags(host, { plainHttp: ['quay.io'] })).toThrow(
      `--plain-http quay.io: quay.io is not the registry (--registry ${host})`,
    );
    const r = siteRegistryFromFlags(
      host,
      { plainHttp: ['', 'up:5000'], caFile: ['quay.io=/ca.pem'] },
      '--to',
      'return',
    );
    expect(r).toMatchObject({ plainHttp: true, others: { plainHttp: ['up:5000'], caFile: ['quay.io=/ca.pem'] } });
    expect(registryHostsFromFlags(r.others)).toEqual({
      'up:5000': { plainHttp: true },
      'quay.io': { caFile: '/ca.pem' },
    });
  });

  it('plain HTTP, --insecure and a CA exclude each other; the address is checked first', () => {
    expect(() => siteRegistryFromFlags(host, { plainHttp: [''], insecure: [''] })).toThrow(
      '--plain-http and --insecure exclude each other',
    );
    expect(() => siteRegistryFromFlags('127.0.0.1:99999', { plainHttp: [''] })).toThrow('not 99999');
  });

  it('a command reading from many registries (bundle) wants the HOST', () => {
    expect(() => registryHostsFromFlags({ plainHttp: [''] })).toThrow('--plain-http needs the registry it applies to');
  });
});
