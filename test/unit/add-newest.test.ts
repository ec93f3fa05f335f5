// The newest version among an OCI chart's tags: semver order (not string order), a leading "v"
// allowed, prereleases only when asked, tags that are no version ignored.
import { describe, expect, it } from 'vitest';
import { newestTag } from '../../src/add/newest.ts';

describe('newestTag', () => {
  it.each([
    [['v1.2.0', 'v1.10.0', 'v1.9.0'], {}, 'v1.10.0'],
    [['1.2.0', 'v1.3.0', 'latest', 'main', 'sha-1234abc'], {}, 'v1.3.0'],
    [['v1.2.0', 'v2.0.0-rc.1'], {}, 'v1.2.0'],
    [['v1.2.0', 'v2.0.0-rc.1'], { devel: true }, 'v2.0.0-rc.1'],
    [['v1.2.0', '1.2.0'], {}, '1.2.0'],
    [['1.2.0', 'v1.2.0'], {}, '1.2.0'],
    // helm pushes build metadata (+) as _ : 1.2.0+build is the same version, later by build order
    [['1.2.0', '1.2.0_build.5'], {}, '1.2.0_build.5'],
    [['latest', 'stable', 'v1.2'], {}, undefined],
    [[], {}, undefined],
  ])('%j %j -> %s', (tags, opts, want) => {
    expect(newestTag(tags, opts)).toBe(want);
  });
});
