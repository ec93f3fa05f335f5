// `sealift generate` as a user runs it: what it prints, exit codes, and that bad input writes nothing.
import { cp, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/tools.ts';
import { tempDir } from '../support/process.ts';
import { runSealift } from '../support/cli.ts';

async function sealift(args: string[], cwd: string) {
  return runSealift(args, { cwd, timeout: 60_000 });
}

async function stackCopy(root: string): Promise<string> {
  const stack = join(root, 'stack');
  await cp(join(PROJECT_ROOT, 'environments'), join(stack, 'environments'), { recursive: true });
  await cp(join(PROJECT_ROOT, 'templates'), join(stack, 'templates'), { recursive: true });
  // the stack's own charts (platform-extras), which airgap renders
  await cp(join(PROJECT_ROOT, 'charts'), join(stack, 'charts'), { recursive: true });
  return stack;
}

describe('sealift generate (CLI)', () => {
  it('prints every file it wrote, then nothing changed on a re-run; --json gives the same list', async () => {
    await using tmp = await tempDir();
    const stack = await stackCopy(tmp.path);
    const first = await sealift(['generate', '--all', '-o', 'out'], stack);
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stdout).toContain(`wrote     ${join(stack, 'out', 'helmfile.yaml.gotmpl')}`);
    expect(first.stdout).toContain(`wrote     ${join(stack, 'out', 'values', 'airgap', 'kserve.yaml')}`);
    expect(first.stdout).toMatch(/43 files for airgap, online in .* \(43 changed\)/);
    const text = await readFile(join(stack, 'out', 'helmfile.yaml.gotmpl'));

    const second = await sealift(['generate', '--all', '-o', 'out', '--json'], stack);
    expect(second.exitCode).toBe(0);
    const result = JSON.parse(second.stdout) as {
      ok: boolean;
      environments: string[];
      files: { path: string; action: string; sha256: string }[];
    };
    expect(result.ok).toBe(true);
    expect(result.environments).toEqual(['airgap', 'online']);
    expect(result.files.length).toBe(43);
    expect(result.files.every((f) => f.action === 'unchanged')).toBe(true);
    expect(await readFile(join(stack, 'out', 'helmfile.yaml.gotmpl'))).toEqual(text);
  });

  const bad: { name: string; file: string; text: string; exit: number; message: RegExp }[] = [
    {
      name: 'an unknown environment',
      file: '',
      text: '',
      exit: 2,
      message: /unknown environment "nope".*\n.*Known environments: airgap, online/,
    },
    {
      name: 'a YAML syntax error',
      file: 'nope.yaml',
      text: 'registry:\n  host: "10.0.0.1:5000\n',
      exit: 3,
      message: /nope\.yaml:\d+:\d+: YAML syntax error/,
    },
    {
      name: 'an unknown key',
      file: 'nope.yaml',
      text: 'registry: null\nregistries: []\n',
      exit: 3,
      message: /nope\.yaml:2: registries: unknown key "registries"/,
    },
    {
      name: 'needs naming a missing release',
      file: 'nope.yaml',
      text: 'releases:\n  kserve:\n    needs: [knative-operator]\n',
      exit: 3,
      message: /nope\.yaml:3: releases\.kserve\.needs\[0\]: needs "knative-operator", which is not a release/,
    },
    {
      name: 'a dependency cycle',
      file: 'nope.yaml',
      text: 'releases:\n  cert-manager:\n    needs: [kserve]\n',
      exit: 3,
      message: /nope\.yaml:3: releases\.cert-manager\.needs\[0\]: dependency cycle: .*cert-manager needs kserve/,
    },
  ];

  it.each(bad)(
    '$name: clear error with file and line, exit $exit, nothing written',
    async ({ file, text, exit, message }) => {
      await using tmp = await tempDir();
      const stack = await stackCopy(tmp.path);
      if (file) await writeFile(join(stack, 'environments', file), text);
      const r = await sealift(['generate', '-e', 'nope', '-o', 'out'], stack);
      expect(r.exitCode).toBe(exit);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toContain('hint:');
      expect(await readdir(stack)).toEqual(['charts', 'environments', 'templates']);

      const j = await sealift(['generate', '-e', 'nope', '-o', 'out', '--json'], stack);
      expect(j.exitCode).toBe(exit);
      const err = (JSON.parse(j.stdout) as { ok: boolean; error: { code: string; message: string } }).error;
      expect(err.message).toMatch(message.source.includes('\\n') ? /unknown environment/ : message);
    },
  );

  it('without -e or --all: usage error', async () => {
    await using tmp = await tempDir();
    const r = await sealift(['generate'], tmp.path);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('-e <name>');
  });
});
