// What a shell binary is, read from its ELF header: the platform it runs on (the image config's
// architecture) and whether it is static. KServe's modelcar sidecar runs `sh -c "ln ... && sleep
// infinity"` inside the model image, which has no libc: only a static shell can run there.
import { open } from 'node:fs/promises';
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

const PT_INTERP = 3;

export interface ElfInfo {
  architecture: string;
  /** no program interpreter (PT_INTERP): runs without a dynamic loader or libc */
  static: boolean;
}

export async function readElfInfo(path: string): Promise<ElfInfo> {
  const fh = await open(path, 'r').catch((e: Error) => {
    throw new SealiftError('NOT_FOUND', `cannot read the modelcar shell ${path}: ${e.message}`, {
      hint: "Install Debian's busybox-static (it provides a static /bin/busybox) or set BUSYBOX_BIN.",
    });
  });
  try {
    const head = Buffer.alloc(64);
    await fh.read(head, 0, 64, 0);
    if (head.readUInt32BE(0) !== 0x7f454c46) {
      throw new SealiftError('CONFIG_INVALID', `${path} is not an ELF executable`, {
        hint: "The modelcar shell must be a static Linux binary such as Debian busybox-static's /bin/busybox.",
      });
    }
    const is64 = head[4] === 2;
    const le = head[5] === 1;
    const u16 = (o: number) => (le ? head.readUInt16LE(o) : head.readUInt16BE(o));
    const u32 = (b: Buffer, o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
    const machine = u16(18);
    const architecture = MACHINES[machine];
    if (!architecture) throw new SealiftError('CONFIG_INVALID', `${path}: unknown ELF machine ${machine}`);
    const phoff = is64 ? Number(le ? head.readBigUInt64LE(32) : head.readBigUInt64BE(32)) : u32(head, 28);
    const phentsize = u16(is64 ? 54 : 42);
    const phnum = u16(is64 ? 56 : 44);
    const table = Buffer.alloc(phentsize * phnum);
    await fh.read(table, 0, table.length, phoff);
    let interp = false;
    for (let i = 0; i < phnum; i++) if (u32(table, i * phentsize) === PT_INTERP) interp = true;
    return { architecture, static: !interp };
  } finally {
    await fh.close();
  }
}
