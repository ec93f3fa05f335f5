// The pure diff of two bundles' contents: images matched by reference, new bytes by blob digest.
import { describe, expect, it } from 'vitest';
import { diffBundles, type DiffInput } from '../../src/bundle/diff.ts';

const d = (c: string) => `sha256:${c.repeat(64)}`;

const A: DiffInput = {
  images: [
    { reference: 'docker.io/istio/pilot:1.23.2', digest: d('1') },
    { reference: 'docker.io/istio/proxyv2:1.23.2', digest: d('2') },
    { reference: 'quay.io/jetstack/cert-manager-controller:v1.16.1', digest: d('3') },
  ],
  blobs: new Map([
    [d('1'), 500],
    [d('2'), 400],
    [d('3'), 300],
    [d('a'), 1000],
    [d('b'), 2000],
  ]),
  charts: [{ path: 'charts/istiod-1.23.2.tgz', sha256: '1'.repeat(64) }],
  files: [
    { path: 'releases/knative/serving-core.yaml', sha256: '2'.repeat(64) },
    { path: 'values/istiod.yaml', sha256: '3'.repeat(64) },
  ],
  tools: [{ path: 'bin/linux-amd64/helm', sha256: '5'.repeat(64) }],
};

describe('diffBundles', () => {
  it('a bundle against itself: nothing added, removed, changed or new', () => {
    const r = diffBundles(A, A);
    expect(r).toEqual({
      images: { added: [], removed: [], changed: [], unchanged: 3 },
      newBlobs: 0,
      newBytes: 0,
      charts: { added: [], removed: [], changed: [] },
      files: { added: [], removed: [], changed: [] },
      tools: { added: [], removed: [], changed: [] },
      same: true,
    });
  });

  it('names the added, removed and re-pointed images, changed charts, files and tools, and counts only blobs A lacks', () => {
    const B: DiffInput = {
      images: [
        { reference: 'docker.io/istio/pilot:1.23.2', digest: d('4') }, // changed
        { reference: 'docker.io/istio/proxyv2:1.23.2', digest: d('2') }, // same
        { reference: 'gcr.io/knative-releases/knative.dev/serving/cmd/queue:v1.16.0', digest: d('5') }, // added
      ],
      blobs: new Map([
        [d('2'), 400],
        [d('4'), 510],
        [d('5'), 320],
        [d('a'), 1000], // shared with A: not new
        [d('c'), 7000],
      ]),
      charts: [{ path: 'charts/istiod-1.23.2.tgz', sha256: '9'.repeat(64) }],
      files: [
        { path: 'releases/knative/serving-core.yaml', sha256: '2'.repeat(64) },
        { path: 'values/knative.yaml', sha256: '4'.repeat(64) },
      ],
      tools: [
        { path: 'bin/linux-amd64/helm', sha256: '6'.repeat(64) },
        { path: 'bin/linux-amd64/helmfile', sha256: '7'.repeat(64) },
      ],
    };
    const r = diffBundles(A, B);
    expect(r.images.added).toEqual([
      { reference: 'gcr.io/knative-releases/knative.dev/serving/cmd/queue:v1.16.0', digest: d('5') },
    ]);
    expect(r.images.removed).toEqual([
      { reference: 'quay.io/jetstack/cert-manager-controller:v1.16.1', digest: d('3') },
    ]);
    expect(r.images.changed).toEqual([{ reference: 'docker.io/istio/pilot:1.23.2', from: d('1'), to: d('4') }]);
    expect(r.images.unchanged).toBe(1);
    expect(r.newBlobs).toBe(3);
    expect(r.newBytes).toBe(510 + 320 + 7000);
    expect(r.charts).toEqual({ added: [], removed: [], changed: ['charts/istiod-1.23.2.tgz'] });
    expect(r.files).toEqual({ added: ['values/knative.yaml'], removed: ['values/istiod.yaml'], changed: [] });
    expect(r.tools).toEqual({ added: ['bin/linux-amd64/helmfile'], removed: [], changed: ['bin/linux-amd64/helm'] });
    expect(r.same).toBe(false);
  });

  it('the other way round: what B removed A still has, and B is the smaller side', () => {
    const B: DiffInput = {
      images: A.images.slice(0, 1),
      blobs: new Map([[d('1'), 500]]),
      charts: [],
      files: [],
      tools: [],
    };
    const back = diffBundles(B, A);
    expect(back.images.added.map((i) => i.reference)).toEqual([
      'docker.io/istio/proxyv2:1.23.2',
      'quay.io/jetstack/cert-manager-controller:v1.16.1',
    ]);
    expect(back.newBytes).toBe(400 + 300 + 1000 + 2000);
    expect(diffBundles(A, B).newBytes).toBe(0);
    expect(diffBundles(A, B).same).toBe(false);
  });
});
