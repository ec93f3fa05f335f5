// Nothing imports upward: every module under src/ sits on a floor (README, Layout), and may import
// only from its own folder, from a lower floor, or from the ground floor's root modules. Two stage
// folders on one floor do not import each other. Dynamic `import('...')` counts like a static one.
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/tools.ts';

/** Lowest first. `.` is the root modules (errors.ts, events.ts, fs-atomic.ts, exec.ts, tools.ts). */
export const FLOORS: readonly (readonly string[])[] = [
  ['.'],
  ['oci'],
  ['models'],
  ['config', 'container-image'],
  ['generate'],
  ['render'],
  ['images'],
  ['bundle-format'],
  ['bundle', 'load'],
  ['verify', 'check', 'size', 'add'],
  ['commands'],
  ['cli.ts'],
];

const SRC = join(PROJECT_ROOT, 'src');

/** The folder (or `cli.ts`, or `.` for the other root modules) a file under src/ belongs to. */
function unitOf(file: string): string {
  const rel = relative(SRC, file).split('\\').join('/');
  if (!rel.includes('/')) return rel === 'cli.ts' ? 'cli.ts' : '.';
  return rel.slice(0, rel.indexOf('/'));
}

function floorOf(unit: string): number {
  const i = FLOORS.findIndex((f) => f.includes(unit));
  if (i === -1) throw new Error(`src/${unit} is on no floor: add it to FLOORS and to README's Layout`);
  return i;
}

async function sourceFiles(): Promise<string[]> {
  return (await readdir(SRC, { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name));
}

const IMPORT_RE = /(?:\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)'(\.[^']+)'/gm;

async function upwardImports(): Promise<string[]> {
  const bad: string[] = [];
  for (const file of await sourceFiles()) {
    const from = unitOf(file);
    const text = await readFile(file, 'utf8');
    for (const m of text.matchAll(IMPORT_RE)) {
      const to = unitOf(resolve(dirname(file), m[1] ?? ''));
      if (to === from) continue;
      const [a, b] = [floorOf(from), floorOf(to)];
      if (b > a || (b === a && from !== to))
        bad.push(`${relative(PROJECT_ROOT, file)} imports ${m[1]} (${to}, floor ${b}) from floor ${a}`);
    }
  }
  return bad;
}

describe('floors', () => {
  it('no module under src/ imports from a higher floor or a sibling on its own floor', async () => {
    expect(await upwardImports()).toEqual([]);
  });

  it('every folder under src/ has a floor, and README Layout names the same order', async () => {
    const units = new Set((await sourceFiles()).map(unitOf));
    for (const u of units) expect(() => floorOf(u)).not.toThrow();
    const readme = await readFile(join(PROJECT_ROOT, 'README.md'), 'utf8');
    const stated = /floors, lowest first: ([^\n]+)/.exec(readme)?.[1];
    expect(stated, 'README Layout states the floors').toBeDefined();
    expect(stated?.replace(/`/g, '').replace(/\.$/, '')).toBe(
      FLOORS.map((f) => f.map((u) => (u === '.' ? 'root modules' : u)).join(' + ')).join(' < '),
    );
  });
});
