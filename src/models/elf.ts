// What an executable is, read from its ELF headers: the platform it runs on (the image config's
// architecture), its program interpreter (the dynamic loader; none: static) and the shared
// libraries it names (DT_NEEDED). KServe's modelcar sidecar runs `sh -c "ln ... && sleep
// infinity"` inside the model image, which has no libc: only a static shell can run there. The
// sealift image (src/container-image) carries exactly the libraries its executable names.
import { open, type FileHandle } from 'node:fs/promises';
import { SealiftError } from '../errors.ts';

/** ELF e_machine -> OCI architecture */
const MACHINES: Record<number, string> = {
  3: '386',
  40: 'arm',
  62: 'amd64',
  183: 'arm64',
  243: 'riscv64',
  21: 'ppc64le',
  22: 's390x',
};

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0;
const DT_NEEDED = 1;
const DT_STRTAB = 5;

export interface ElfInfo {
  architecture: string;
  /** no program interpreter (PT_INTERP): runs without a dynamic loader or libc */
  static: boolean;
}

export interface ElfLinking extends ElfInfo {
  /** the dynamic loader's path (PT_INTERP), e.g. /lib64/ld-linux-x86-64.so.2 */
  interpreter?: string;
  /** the shared libraries it names (DT_NEEDED), in the file's order */
  needed: string[];
}

interface Segment {
  type: number;
  offset: number;
  vaddr: number;
  filesz: number;
}

async function readAt(fh: FileHandle, offset: number, length: number): Promise<Buffer> {
  const b = Buffer.alloc(length);
  const { bytesRead } = await fh.read(b, 0, length, offset);
  return b.subarray(0, bytesRead);
}

const cString = (b: Buffer, at: number) => {
  const end = b.indexOf(0, at);
  return b.toString('latin1', at, end === -1 ? b.length : end);
};

/** The ELF headers of `path`; `notElf` is the error for a file that is none (its hint differs by caller). */
export async function readElfLinking(path: string, notElf: () => SealiftError): Promise<ElfLinking> {
  const fh = await open(path, 'r').catch((e: Error) => {
    throw new SealiftError('NOT_FOUND', `cannot read ${path}: ${e.message}`);
  });
  try {
    const head = await readAt(fh, 0, 64);
    if (head.length < 52 || head.readUInt32BE(0) !== 0x7f454c46) throw notElf();
    const is64 = head[4] === 2;
    const le = head[5] === 1;
    const u16 = (b: Buffer, o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
    const u32 = (b: Buffer, o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
    const word = (b: Buffer, o: number) =>
      is64 ? Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o)) : u32(b, o);
    const machine = u16(head, 18);
    const architecture = MACHINES[machine];
    if (!architecture) throw new SealiftError('CONFIG_INVALID', `${path}: unknown ELF machine ${machine}`);
    const phoff = word(head, is64 ? 32 : 28);
    const phentsize = u16(head, is64 ? 54 : 42);
    const phnum = u16(head, is64 ? 56 : 44);
    const table = await readAt(fh, phoff, phentsize * phnum);
    const segments: Segment[] = [];
    for (let i = 0; i < phnum; i++) {
      const at = i * phentsize;
      segments.push(
        is64
          ? {
              type: u32(table, at),
              offset: word(table, at + 8),
              vaddr: word(table, at + 16),
              filesz: word(table, at + 32),
            }
          : {
              type: u32(table, at),
              offset: u32(table, at + 4),
              vaddr: u32(table, at + 8),
              filesz: u32(table, at + 16),
            },
      );
    }
    const interp = segments.find((s) => s.type === PT_INTERP);
    const interpreter = interp ? cString(await readAt(fh, interp.offset, interp.filesz), 0) : undefined;
    const needed: string[] = [];
    const dynamic = segments.find((s) => s.type === PT_DYNAMIC);
    if (dynamic) {
      const dyn = await readAt(fh, dynamic.offset, dynamic.filesz);
      const size = is64 ? 16 : 8;
      const offsets: number[] = [];
      let strtab: number | undefined;
      for (let at = 0; at + size <= dyn.length; at += size) {
        const tag = word(dyn, at);
        const val = word(dyn, at + size / 2);
        if (tag === DT_NULL) break;
        if (tag === DT_NEEDED) offsets.push(val);
        if (tag === DT_STRTAB) strtab = val;
      }
      if (offsets.length > 0) {
        // DT_STRTAB is an address: the load segment that maps it says where it is in the file
        const load = segments.find(
          (s) => s.type === PT_LOAD && strtab !== undefined && strtab >= s.vaddr && strtab < s.vaddr + s.filesz,
        );
        if (!load || strtab === undefined)
          throw new SealiftError('CONFIG_INVALID', `${path}: its dynamic string table is in no loaded segment`);
        const base = strtab - load.vaddr + load.offset;
        const longest = 4096;
        for (const o of offsets) needed.push(cString(await readAt(fh, base + o, longest), 0));
      }
    }
    return { architecture, static: interpreter === undefined, ...(interpreter ? { interpreter } : {}), needed };
  } finally {
    await fh.close();
  }
}

export async function readElfInfo(path: string): Promise<ElfInfo> {
  const elf = await readElfLinking(
    path,
    () =>
      new SealiftError('CONFIG_INVALID', `${path} is not an ELF executable`, {
        hint: "The modelcar shell must be a static Linux binary such as Debian busybox-static's /bin/busybox.",
      }),
  ).catch((e: unknown) => {
    if (e instanceof SealiftError && e.code === 'NOT_FOUND')
      throw new SealiftError('NOT_FOUND', `cannot read the modelcar shell ${e.message.replace(/^cannot read /, '')}`, {
        hint: "Install Debian's busybox-static (it provides a static /bin/busybox) or set BUSYBOX_BIN.",
      });
    throw e;
  });
  return { architecture: elf.architecture, static: elf.static };
}
