// The helm wrapper's pure parts: the argv it builds and what it shows of it in errors.
import { describe, expect, it } from 'vitest';
import { redactArgs, stderrTail } from '../../src/exec.ts';
import { templateArgs } from '../../src/render/helm.ts';
import { chartName } from '../../src/render/index.ts';

describe('helm template argv', () => {
  it('renders CRDs and hooks for the environment Kubernetes version, values files in order', () => {
    const args = templateArgs(
      {
        release: 'kserve',
        namespace: 'kserve',
        chart: '/cache/kserve-v0.15.2.tgz',
        kubeVersion: 'v1.28.6',
        valuesFiles: ['a.yaml'],
        set: ['x=1'],
      },
      ['/tmp/values-0.json'],
    );
    expect(args).toEqual([
      'template',
      'kserve',
      '/cache/kserve-v0.15.2.tgz',
      '--namespace',
      'kserve',
      '--include-crds',
      '--kube-version',
      'v1.28.6',
      '--values',
      'a.yaml',
      '--values',
      '/tmp/values-0.json',
      '--set',
      'x=1',
    ]);
    expect(args).not.toContain('--skip-tests'); // test hooks are rendered, then explained away
  });

  it('passes repo, version and plain HTTP for remote charts, and can skip CRDs and the schema', () => {
    expect(
      templateArgs(
        {
          release: 'r',
          chart: 'oci://127.0.0.1:5000/charts/c',
          version: '1.0.0',
          plainHttp: true,
          includeCrds: false,
          skipSchemaValidation: true,
        },
        [],
      ),
    ).toEqual([
      'template',
      'r',
      'oci://127.0.0.1:5000/charts/c',
      '--version',
      '1.0.0',
      '--plain-http',
      '--skip-schema-validation',
    ]);
    expect(templateArgs({ release: 'r', chart: 'gateway', repo: 'http://127.0.0.1:1/charts' }, [])).toContain('--repo');
  });
});

describe('what errors show', () => {
  it('hides values of password-like flags in either form', () => {
    expect(
      redactArgs(['pull', 'x', '--password', 's3cret', '--username', 'u', '--password=s3cret', '--pass', 'p']),
    ).toEqual(['pull', 'x', '--password', '***', '--username', 'u', '--password=***', '--pass', '***']);
  });

  it('keeps the last lines of stderr', () => {
    const err = Array.from({ length: 30 }, (_, i) => `line ${i}`).join('\n');
    expect(stderrTail(err, 3)).toBe('line 27\nline 28\nline 29');
  });

  it('names charts from their source', () => {
    expect(
      chartName({ type: 'oci', url: 'oci://ghcr.io/kserve/charts/kserve', version: 'v0.15.2', plainHttp: false }),
    ).toBe('kserve');
    expect(chartName({ type: 'repo', repoUrl: 'https://x', chart: 'istiod', version: '1.23.2' })).toBe('istiod');
    expect(chartName({ type: 'manifests', files: [] })).toBeUndefined();
  });
});
