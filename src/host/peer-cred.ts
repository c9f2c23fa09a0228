// Who is at the other end of a connected unix socket: SO_PEERCRED (unix(7)) read through the addon
// (native/unix_fd.cc peerCred). Node's net module cannot read it; the runtime's control socket uses it to serve
// only its own uid (or root) and to check that a stdio relay registers its own pid. Policy is the caller's.

import { loadNative, type NativeAddon } from '../kvm/native.js';

/** The peer process as the kernel recorded it at connect(2). */
export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

/** getsockopt(fd, SO_PEERCRED); throws the addon's errno error (ENOTSOCK, ENOTCONN, EBADF). */
export function peerCredentials(fd: number, native: Pick<NativeAddon, 'peerCred'> = loadNative()): PeerCred {
  return native.peerCred(fd);
}
