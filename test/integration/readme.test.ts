// Issue 8 bug 12: the docs stay true where a test can read them. Every sealift command line in
// README.md names flags its --help lists; the bundle file the quickstart names is the one bundle
// writes; the exit-code table is ERROR_CODES; and only the CLI layer sets exit codes, as
// src/errors.ts says.
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.ts';
import { PROJECT_ROOT } from '../../src/tools.ts';
import { runSealift } from '../support/cli.ts';
import { tempDir } from '../support/process.ts';

const readme = await readFile(join(PROJECT_ROOT, 'README.md'), 'utf8');

/** `node bin/sealift.js ...` lines of the README's sh blocks and `sealift ...` in its inline code. */
function commandLines(): string[] {
  const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) => m[1]!.split('\n'));
  const fromBlocks = blocks
    .map((l) => /node bin\/sealift\.js (.*?)(\s+#.*)?$/.exec(l)?.[1])
    .filter((l): l is string => Boolean(l));
  const inline = [...readme.matchAll(/`sealift ([^`]+)`/g)].map((m) => m[1]!);
  return [...fromBlocks, ...inline];
}

describe('README.md is true', () => {
  it('every flag a README command line names is in that command’s --help', async () => {
    const lines = commandLines();
    expect(lines.length).toBeGreaterThan(10);
    const helps = new Map<string, string>();
    for (const line of lines) {
      const words = line.replace(/[()]/g, ' ').split(/\s+/).filter(Boolean);
      // the command path: words up to the first flag or argument (a path, a placeholder)
      const path: string[] = [];
      for (const w of words) {
        if (!/^[a-z]+$/.test(w) || (path.length > 0 && !['verify', 'scan', 'sign'].includes(w))) break;
        path.push(w);
      }
      const key = path.join(' ');
      if (!helps.has(key)) {
        const h = await runSealift([...path, '--help']);
        expect(h.exitCode, `${key} --help: ${h.stderr}`).toBe(0);
        helps.set(key, h.stdout);
      }
      for (const flag of words.filter((w) => /^--?[a-z]/.test(w)).map((w) => w.replace(/[=,].*$/, ''))) {
        expect(helps.get(key), `README: sealift ${line}: ${flag}`).toMatch(
          new RegExp(`(^|[\\s,])${flag.replace(/[-]/g, '\\-')}([\\s,<[]|$)`, 'm'),
        );
      }
    }
  }, 120_000);

  it('the bundle file the quickstart names is the one `bundle -e airgap` writes', async () => {
    const named = /bundle -e airgap -o bundles\/\s+# bundles\/(\S+)/.exec(readme)?.[1];
    expect(named).toBe('airgap.tar');
    expect(readme).toContain(`bundle verify bundles/${named}`);
    // ask bundle itself: with a directory where its tar goes, it refuses naming that path, before any pull
    await using tmp = await tempDir();
    await mkdir(join(tmp.path, named!));
    const r = await runSealift(['bundle', '-e', 'airgap', '-o', tmp.path]);
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr).toContain(`${join(tmp.path, named!)} is a directory, where the output file must go`);
  });

  it('the exit-code table lists every error code with its exit code', () => {
    const table = new Map<string, number>();
    for (const m of readme.matchAll(/^\| (\d+)\s+\| ([^|]*)\|/gm))
      for (const c of m[2]!.matchAll(/`([A-Z_]+)`/g)) table.set(c[1]!, Number(m[1]));
    expect(Object.fromEntries(table)).toEqual(
      Object.fromEntries(Object.entries(ERROR_CODES).map(([code, { exit }]) => [code, exit])),
    );
  });

  it('only the CLI layer sets exit codes (as src/errors.ts says)', async () => {
    expect(await readFile(join(PROJECT_ROOT, 'src', 'errors.ts'), 'utf8')).toContain(
      'Only the CLI layer (src/cli.ts and src/commands/, output.ts for errors) turns codes into exit codes.',
    );
    const offenders: string[] = [];
    for (const e of await readdir(join(PROJECT_ROOT, 'src'), { recursive: true, withFileTypes: true })) {
      if (!e.isFile() || !e.name.endsWith('.ts')) continue;
      const file = relative(PROJECT_ROOT, join(e.parentPath, e.name));
      if (file.startsWith('src/commands/') || file === 'src/cli.ts') continue;
      if (/process\.exit(Code)?\b/.test(await readFile(join(PROJECT_ROOT, file), 'utf8'))) offenders.push(file);
    }
    expect(offenders).toEqual([]);
  });
});
