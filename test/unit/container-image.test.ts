// What the sealift image's base is made of, read from ELF headers: the loader and every library in
// the DT_NEEDED closure (the same set ldd prints, without running the loader, so a foreign
// architecture's too), and clear errors for what cannot be an image's executable.
import { execa } from 'execa';
import { realpath, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { libraryDirsFor, linkedFiles } from '../../src/container-image/index.ts';
import { readElfLinking } from '../../src/models/index.ts';
import { SealiftError } from '../../src/errors.ts';
import { tempDir } from '../support/process.ts';

const notElf = () => new SealiftError('CONFIG_INVALID', 'not an ELF file');
const BUSYBOX = process.env.BUSYBOX_BIN ?? '/bin/busybox';

/** ldd's `name => path` lines: the libraries the loader maps (not the loader, not the vdso), each to its file. */
async function ldd(file: string): Promise<{ soname: string; file: string }[]> {
  const out: { soname: string; file: string }[] = [];
  for (const l of (await execa('ldd', [file])).stdout.split('\n')) {
    const m = /^\s*(\S+) => (\S+) /.exec(l);
    if (m) out.push({ soname: m[1]!, file: await realpath(m[2]!) });
  }
  return out.sort((a, b) => (a.soname < b.soname ? -1 : 1));
}

describe('readElfLinking', () => {
  it('reads the loader and DT_NEEDED of a dynamic executable, and none of a static one', async () => {
    const git = await readElfLinking('/usr/bin/git', notElf);
    expect(git.architecture).toBe('amd64');
    expect(git.interpreter).toBe('/lib64/ld-linux-x86-64.so.2');
    expect(git.needed).toContain('libc.so.6');
    expect(git.static).toBe(false);
    const busybox = await readElfLinking(BUSYBOX, notElf);
    expect(busybox).toEqual({ architecture: 'amd64', static: true, needed: [] });
  });

  it('reads a foreign architecture the same way (the aarch64 libstdc++ of the cross packages)', async () => {
    const lib = await readElfLinking('/usr/aarch64-linux-gnu/lib/libstdc++.so.6', notElf);
    expect(lib.architecture).toBe('arm64');
    expect(lib.needed).toEqual(expect.arrayContaining(['libm.so.6', 'libc.so.6', 'libgcc_s.so.1']));
  });

  it('refuses a file that is no ELF with the error it is given', async () => {
    await using tmp = await tempDir();
    const f = join(tmp.path, 'script');
    await writeFile(f, '#!/bin/sh\necho hi\n');
    await expect(readElfLinking(f, notElf)).rejects.toThrow('not an ELF file');
  });
});

describe('linkedFiles', () => {
  it.each(['/usr/bin/git', '/usr/bin/skopeo', process.execPath])(
    'names the libraries ldd names for %s, each resolved to its file',
    async (exe) => {
      const linked = await linkedFiles(exe, libraryDirsFor('amd64'));
      expect(linked.libraries).toEqual(await ldd(exe));
      expect(linked.interpreter.path).toBe('/lib64/ld-linux-x86-64.so.2');
      expect(linked.triplet).toBe('x86_64-linux-gnu');
    },
  );

  it('takes an arm64 loader from the cross directory (aarch64 libc.so.6 runs as a program too)', async () => {
    const linked = await linkedFiles('/usr/aarch64-linux-gnu/lib/libc.so.6', [
      ...libraryDirsFor('amd64'),
      ...libraryDirsFor('arm64'),
    ]);
    expect(linked.architecture).toBe('arm64');
    expect(linked.triplet).toBe('aarch64-linux-gnu');
    expect(linked.interpreter).toEqual({
      path: '/lib/ld-linux-aarch64.so.1',
      file: '/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1',
    });
    expect(linked.libraries).toEqual([]);
  });

  it('says which library is missing and where it looked', async () => {
    const e = (await linkedFiles('/usr/bin/git', ['/nonexistent']).catch((x: unknown) => x)) as SealiftError;
    expect(e.code).toBe('TOOL_MISSING');
    expect(e.message).toMatch(/^\S+\.so\.\d+, which git \(amd64\) needs, is in none of \/nonexistent/);
  });

  it('refuses a static executable: it needs no base', async () => {
    await expect(linkedFiles(BUSYBOX, libraryDirsFor('amd64'))).rejects.toThrow('is static');
  });
});
