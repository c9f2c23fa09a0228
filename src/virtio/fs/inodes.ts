// The FUSE server's tables: inodes (nodeid -> host O_PATH fd, found again by (st_dev, st_ino), with the
// kernel's lookup count, fuse.h "FORGET") and open handles (fh -> host open fd). Ids are our own counters,
// never host fds or inode numbers, so a guest cannot name an object it was not given: an unknown nodeid or
// fh is simply absent. The root (FUSE_ROOT_ID) is never forgotten.

import { FUSE_ROOT_ID, S_IFMT } from './abi.js';
import type { FsStat } from './backend.js';

export interface Inode {
  readonly id: number;
  /** O_PATH fd of the inode (owned by the table) */
  readonly fd: number;
  readonly dev: bigint;
  readonly ino: bigint;
  /** S_IFMT bits of st_mode at first lookup (the type of an inode never changes) */
  readonly type: number;
  /** the kernel's lookup count */
  refs: number;
}

export interface Handle {
  readonly fh: number;
  /** open fd (owned by the table) */
  readonly fd: number;
  readonly inode: number;
  readonly kind: 'file' | 'dir';
}

export class InodeTable {
  private readonly byId = new Map<number, Inode>();
  /** st_dev -> st_ino -> inode (BigInt keys compare by value: no string key built per lookup) */
  private readonly byDevIno = new Map<bigint, Map<bigint, Inode>>();
  private next = FUSE_ROOT_ID + 1;

  constructor(
    rootFd: number,
    rootStat: FsStat,
    private readonly closeFd: (fd: number) => void,
  ) {
    const root: Inode = { id: FUSE_ROOT_ID, fd: rootFd, dev: rootStat.dev, ino: rootStat.ino, type: rootStat.mode & S_IFMT, refs: 1 };
    this.byId.set(root.id, root);
    this.index(root);
  }

  private index(inode: Inode): void {
    let byIno = this.byDevIno.get(inode.dev);
    if (byIno === undefined) {
      byIno = new Map<bigint, Inode>();
      this.byDevIno.set(inode.dev, byIno);
    }
    byIno.set(inode.ino, inode);
  }

  get size(): number {
    return this.byId.size;
  }

  /** The inode a guest nodeid names, or undefined (unknown, forgotten, or not a 53-bit id: -1). */
  get(id: number): Inode | undefined {
    return this.byId.get(id);
  }

  /**
   * Count one lookup of the object behind `fd` (whose stat is `st`): an inode already known by (dev, ino)
   * takes the reference and `fd` is closed; otherwise `fd` becomes a new inode.
   */
  insert(fd: number, st: FsStat): Inode {
    const known = this.byDevIno.get(st.dev)?.get(st.ino);
    if (known !== undefined) {
      this.closeFd(fd);
      known.refs++;
      return known;
    }
    const inode: Inode = { id: this.next++, fd, dev: st.dev, ino: st.ino, type: st.mode & S_IFMT, refs: 1 };
    this.byId.set(inode.id, inode);
    this.index(inode);
    return inode;
  }

  /** fuse.h FORGET: drop `n` lookups; at zero the fd is closed and the nodeid is gone. Unknown ids are ignored. */
  forget(id: number, n: bigint): void {
    const inode = this.byId.get(id);
    if (inode === undefined || id === FUSE_ROOT_ID) return;
    inode.refs = n >= BigInt(inode.refs) ? 0 : inode.refs - Number(n);
    if (inode.refs === 0) {
      this.byId.delete(id);
      const byIno = this.byDevIno.get(inode.dev);
      byIno?.delete(inode.ino);
      if (byIno?.size === 0) this.byDevIno.delete(inode.dev);
      this.closeFd(inode.fd);
    }
  }

  /** Drop every inode but the root (DESTROY, reset: a new session, so ids start again). */
  clear(): void {
    for (const inode of [...this.byId.values()]) {
      if (inode.id !== FUSE_ROOT_ID) this.forget(inode.id, BigInt(inode.refs));
    }
    this.next = FUSE_ROOT_ID + 1; // a new session: the kernel holds none of the old ids
  }
}

export class HandleTable {
  private readonly byFh = new Map<number, Handle>();
  private next = 1;

  constructor(
    private readonly closeFd: (fd: number) => void,
    /** most handles open at once (each holds a host fd) */
    readonly max: number,
  ) {}

  get size(): number {
    return this.byFh.size;
  }

  get full(): boolean {
    return this.byFh.size >= this.max;
  }

  add(fd: number, inode: number, kind: 'file' | 'dir'): Handle {
    const h: Handle = { fh: this.next++, fd, inode, kind };
    this.byFh.set(h.fh, h);
    return h;
  }

  /** The handle a guest fh names if it is of `kind`, else undefined. */
  get(fh: number, kind: 'file' | 'dir'): Handle | undefined {
    const h = this.byFh.get(fh);
    return h !== undefined && h.kind === kind ? h : undefined;
  }

  /** Close and forget a handle; false when fh is not an open handle of `kind`. */
  release(fh: number, kind: 'file' | 'dir'): boolean {
    const h = this.get(fh, kind);
    if (h === undefined) return false;
    this.byFh.delete(fh);
    this.closeFd(h.fd);
    return true;
  }

  clear(): void {
    for (const h of [...this.byFh.values()]) this.release(h.fh, h.kind);
    this.next = 1;
  }
}
