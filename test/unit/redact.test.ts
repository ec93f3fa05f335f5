// Bug 3 (issue 8), the pure part: what a URL's userinfo and a tool's echoed secrets become in text.
import { describe, expect, it } from 'vitest';
import { redactArgs, redactOutput, secretsIn } from '../../src/exec.ts';
import { redactText, redactUrl } from '../../src/redact.ts';

describe('redactText', () => {
  it.each([
    {
      input: 'Get "http://bob:SECRET@127.0.0.1:9/charts/index.yaml"',
      out: 'Get "http://***@127.0.0.1:9/charts/index.yaml"',
    },
    { input: 'oci://u:p@reg.example:5000/charts/x', out: 'oci://***@reg.example:5000/charts/x' },
    {
      input: 'https://TOKEN@github.example/x and https://a:b@c/d',
      out: 'https://***@github.example/x and https://***@c/d',
    },
    // image references carry "@" too: no scheme, nothing redacted
    { input: 'docker.io/istio/pilot:1.23.2@sha256:abc', out: 'docker.io/istio/pilot:1.23.2@sha256:abc' },
    { input: 'http://127.0.0.1:9/charts', out: 'http://127.0.0.1:9/charts' },
  ])('$input', ({ input, out }) => expect(redactText(input)).toBe(out));

  it('redactUrl keeps origin and path only (no userinfo, no query with upload states or signatures)', () => {
    expect(redactUrl('http://bob:SECRET@h:1/v2/x/blobs/uploads/u?_state=abc&digest=sha256:1')).toBe(
      'http://h:1/v2/x/blobs/uploads/u',
    );
  });
});

describe('a tool run: secrets from its argv', () => {
  const args = ['pull', 'x', '--repo', 'http://bob:p%40ss@127.0.0.1:9/charts', '--password', 'hunter2'];
  it('are found raw and decoded, hidden in the argv and removed from what the tool printed', () => {
    expect(secretsIn(args).sort()).toEqual(['hunter2', 'p%40ss', 'p@ss']);
    expect(redactArgs(args)).toEqual(['pull', 'x', '--repo', 'http://***@127.0.0.1:9/charts', '--password', '***']);
    const stderr = 'Error: invalid registry "bob:p@ss@127.0.0.1:9" (password hunter2)';
    const shown = redactOutput(stderr, secretsIn(args));
    expect(shown).not.toMatch(/p@ss|hunter2/);
    expect(shown).toContain('127.0.0.1:9');
  });
});
