// Versions and version ranges, pure. Two range grammars meet here:
// - compat data (compat/*.yaml): node-semver ranges (`>=1.27.0-0 <1.31.0-0`, `^1.2`, `1.2 - 1.4`, `||`);
// - a chart's Chart.yaml `kubeVersion`: Helm's (Masterminds semver): the same comparators, but `,`
//   is AND and `!=` exists. Both are evaluated with semver (the library) after that translation.
import semver, { type SemVer } from 'semver';
import { SealiftError } from '../errors.ts';

export interface VersionRange {
  /** the range as written */
  text: string;
  test(version: SemVer): boolean;
}

const OPTIONS = { includePrerelease: true, loose: true } as const;

/**
 * A version as environments and charts write it: `v1.28.6`, `1.28`, `v0.15.2`, `1.30.4-gke.100`.
 * A missing patch is 0; `where` names the value in the error.
 */
export function parseVersion(text: string, where: string): SemVer {
  const t = text.trim().replace(/^v/, '');
  const full = /^\d+\.\d+$/.test(t) ? `${t}.0` : t;
  const v = semver.parse(full, OPTIONS);
  if (!v) {
    throw new SealiftError('CONFIG_INVALID', `${where}: "${text}" is not a version`, {
      hint: 'Write MAJOR.MINOR[.PATCH], optionally with a leading v: v1.28.6, 1.15.2.',
      details: { value: text },
    });
  }
  return v;
}

function rangeError(text: string, where: string, why: string): SealiftError {
  return new SealiftError('CONFIG_INVALID', `${where}: "${text}" is not a version range: ${why}`, {
    hint: 'Write comparators such as >=1.27.0-0 <1.31.0-0, ^1.2 or 1.2 - 1.4; || between alternatives.',
    details: { value: text },
  });
}

/** A node-semver range (the compat data's grammar). */
export function parseRange(text: string, where: string): VersionRange {
  let range: semver.Range;
  try {
    range = new semver.Range(text, OPTIONS);
  } catch (e) {
    throw rangeError(text, where, (e as Error).message);
  }
  return { text, test: (v) => range.test(v) };
}

/**
 * A Chart.yaml `kubeVersion` constraint, read the way Helm reads it (Masterminds semver):
 * `||` separates alternatives, `,` (or space) joins comparators, `!=` excludes one version.
 */
export function parseChartConstraint(text: string, where: string): VersionRange {
  if (!text.trim()) throw rangeError(text, where, 'it is empty');
  const alternatives = text.split('||').map((alt) => {
    const tests = alt
      .split(',')
      .map((c) => c.trim())
      .filter(Boolean)
      .map((c): ((v: SemVer) => boolean) => {
        if (c.startsWith('!=')) {
          const excluded = parseVersion(c.slice(2), where);
          return (v) => semver.compare(v, excluded) !== 0;
        }
        return parseRange(c.replace(/([<>=~^]+)\s+/g, '$1'), where).test;
      });
    if (tests.length === 0) throw rangeError(text, where, 'an alternative between || is empty');
    return tests;
  });
  return { text, test: (v) => alternatives.some((tests) => tests.every((t) => t(v))) };
}

/** `v1.28.6` for people: the version as a Kubernetes release is named. */
export function formatVersion(v: SemVer): string {
  return `v${v.version}`;
}
