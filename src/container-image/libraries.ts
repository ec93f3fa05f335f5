// The shared libraries a dynamically linked executable needs to start, found the way the loader
// would: its DT_NEEDED names, then theirs, each looked up in the platform's library directories
// (Debian multiarch: /lib/<triplet>, /usr/lib/<triplet> on a native host; /usr/<triplet>/lib from
// the cross packages, e.g. libc6-arm64-cross, for another architecture), plus the loader itself
// (PT_INTERP). Read from the ELF headers, not from ldd: ldd runs the loader, which cannot run a
// foreign architecture's.
import { existsSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { SealiftError } from '../errors.ts';
import { readElfLinking } from '../models/index.ts';

/** OCI architecture -> the GNU triplet Debian names its library directories by */
export const TRIPLETS: Record<string, string> = {
  amd64: 'x86_64-linux-gnu',
  arm64: 'aarch64-linux-gnu',
};

export interface SharedLibrary {
  /** the name the executable or a library asks for (DT_NEEDED), e.g. libstdc++.so.6 */
  soname: string;
  /** the file on the build host (symlinks resolved) */
  file: string;
}

export interface LinkedFiles {
  architecture: string;
  triplet: string;
  /** the loader: where the executable names it (PT_INTERP), and the host file */
  interpreter: { path: string; file: string };
  /** sorted by soname; the loader is not among them */
  libraries: SharedLibrary[];
}

/** The library directories of a Linux architecture that exist on this host, native ones first. */
export function libraryDirsFor(architecture: string): string[] {
  const triplet = TRIPLETS[architecture];
  if (!triplet) return [];
  return [`/lib/${triplet}`, `/usr/lib/${triplet}`, `/usr/${triplet}/lib`].filter((d) => existsSync(d));
}

const notElf = (path: string) => () =>
  new SealiftError('CONFIG_INVALID', `${path} is not an ELF file`, {
    hint: 'Give a Linux executable (npm run build:exe writes dist/sealift-linux-<arch>).',
  });

/** Everything `executable` loads at start: its loader and every library in the closure of DT_NEEDED. */
export async function linkedFiles(executable: string, dirs: readonly string[]): Promise<LinkedFiles> {
  const exe = await readElfLinking(executable, notElf(executable));
  const triplet = TRIPLETS[exe.architecture];
  if (!triplet)
    throw new SealiftError('CONFIG_INVALID', `${executable}: sealift images are built for amd64 and arm64 only`, {
      hint: `It is a ${exe.architecture} executable.`,
    });
  if (!exe.interpreter)
    throw new SealiftError('CONFIG_INVALID', `${executable} is static: it needs no loader or libraries`, {
      hint: 'The sealift executable is dynamically linked (Node); give that one.',
    });
  const missing = (name: string) =>
    new SealiftError(
      'TOOL_MISSING',
      `${name}, which ${basename(executable)} (${exe.architecture}) needs, is in none of ${dirs.join(', ') || '(no library directory)'}`,
      {
        hint:
          exe.architecture === 'arm64'
            ? "Install Debian's cross libraries: apt-get install libc6-arm64-cross libstdc++6-arm64-cross libgcc-s1-arm64-cross."
            : `Install the ${triplet} libc6, libstdc++6 and libgcc-s1 packages.`,
      },
    );
  /** the first file of that name and this architecture in the directories */
  const find = async (name: string): Promise<string> => {
    for (const d of dirs) {
      const p = join(d, name);
      if (!existsSync(p)) continue;
      const elf = await readElfLinking(p, notElf(p));
      if (elf.architecture === exe.architecture) return realpath(p);
    }
    throw missing(name);
  };
  const loaderName = basename(exe.interpreter);
  const interpreter = { path: exe.interpreter, file: await find(loaderName) };
  const found = new Map<string, string>();
  const queue = [...exe.needed];
  while (queue.length > 0) {
    const name = queue.shift() as string;
    if (name === loaderName || found.has(name)) continue;
    const file = await find(name);
    found.set(name, file);
    queue.push(...(await readElfLinking(file, notElf(file))).needed);
  }
  const libraries = [...found.entries()]
    .map(([soname, file]) => ({ soname, file }))
    .sort((a, b) => (a.soname < b.soname ? -1 : 1));
  return { architecture: exe.architecture, triplet, interpreter, libraries };
}
