// What a user of the vsock host side sees when a connection fails: connect() refused or unanswered, or an
// established connection reset. The reasons are the device's (host-protocol.ts VsockCloseReason).

import type { VsockCloseReason } from '../vsock/host-protocol.js';

/** connect() failed: nothing listens on that guest port, the device is not running, or no answer came. */
export class VsockConnectError extends Error {
  override readonly name = 'VsockConnectError';
  constructor(
    readonly port: number,
    readonly reason: VsockCloseReason | 'timeout' | 'host-closed',
  ) {
    super(`vsock connect to guest port ${String(port)} failed: ${describe(reason)}`);
  }
}

/** An established connection ended abnormally (RST from the guest, protocol error, device reset). */
export class VsockConnectionReset extends Error {
  override readonly name = 'VsockConnectionReset';
  constructor(readonly reason: VsockCloseReason | 'host-closed') {
    super(`vsock connection reset: ${describe(reason)}`);
  }
}

function describe(reason: VsockCloseReason | 'host-closed'): string {
  switch (reason) {
    case 'refused':
      return 'connection refused (nothing listens on that port in the guest)';
    case 'reset':
      return 'reset by the guest';
    case 'closed':
      return 'closed';
    case 'protocol':
      return 'the guest broke the vsock protocol; the device reset the connection';
    case 'timeout':
      return 'the guest did not answer in time (is its vsock driver up?)';
    case 'device-reset':
      return 'the vsock device was reset or failed';
    case 'limit':
      return 'too many vsock connections';
    case 'overrun':
      return 'the host wrote past its vsock flow-control window; the device reset the connection';
    case 'inactive':
      return 'the vsock device is not running yet (the guest driver has not set DRIVER_OK)';
    case 'host-closed':
      return 'the VsockHost was closed';
  }
}
