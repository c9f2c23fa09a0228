// A tap device for virtio-net tests whose far end lives in a network namespace the test owns, so guest frames
// reach a real Linux network stack without touching the host's own interfaces. Only 10.213.0.0/30 exists in
// that namespace: the tap holds 10.213.0.1, the guest is expected to use 10.213.0.2.
//
// Order of use (the VMM opens the tap by name in *its* namespace, and a tun fd stays attached when its
// interface moves to another namespace):
//   const tap = TapNetns.create();        // persistent tap in our namespace (ip tuntap add)
//   const vm = await createVm({ devices: [{ kind: 'net', tap: tap.tap }] });   // the device attaches
//   tap.moveIntoNetns();                   // ip link set <tap> netns <ns>; address 10.213.0.1/30; up
//   ... vm.start() ...; await vm.stop(); tap.close();   // deleting the namespace deletes the tap too

import { execFileSync } from 'node:child_process';

export const NETNS_HOST_IP = '10.213.0.1';
export const NETNS_GUEST_IP = '10.213.0.2';
const PREFIX = 30;

let counter = 0;

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export class TapNetns {
  private moved = false;
  private closed = false;

  private constructor(
    /** interface name of the tap */
    readonly tap: string,
    /** network namespace name */
    readonly netns: string,
  ) {}

  /**
   * Create the tap, or say why that is impossible here (no `ip`, no CAP_NET_ADMIN, no /dev/net/tun):
   * the caller skips with that reason.
   */
  static create(): TapNetns | { skip: string } {
    const tag = `${String(process.pid % 100000)}${String(counter++)}`;
    const tap = `ktst${tag}`.slice(0, 15); // IFNAMSIZ - 1
    const netns = `kata-ts-test-${tag}`;
    try {
      ip(['tuntap', 'add', 'dev', tap, 'mode', 'tap', 'vnet_hdr']);
    } catch (e) {
      const err = e as Error & { stderr?: string };
      return { skip: `cannot create a tap device (${(err.stderr ?? err.message).trim()}): virtio-net tests need 'ip', /dev/net/tun and CAP_NET_ADMIN` };
    }
    return new TapNetns(tap, netns);
  }

  /** Move the (already attached) tap into a fresh namespace, give it 10.213.0.1/30 and bring it up. */
  moveIntoNetns(): void {
    ip(['netns', 'add', this.netns]);
    this.moved = true;
    ip(['link', 'set', this.tap, 'netns', this.netns]);
    ip(['-n', this.netns, 'addr', 'add', `${NETNS_HOST_IP}/${String(PREFIX)}`, 'dev', this.tap]);
    ip(['-n', this.netns, 'link', 'set', this.tap, 'up']);
    ip(['-n', this.netns, 'link', 'set', 'lo', 'up']);
  }

  /** The tap's MAC address as the namespace sees it ("aa:bb:cc:dd:ee:ff"). */
  mac(): string {
    const args = this.moved ? ['-n', this.netns, '-o', 'link', 'show', this.tap] : ['-o', 'link', 'show', this.tap];
    const m = /link\/ether ([0-9a-f:]{17})/.exec(ip(args));
    if (!m) throw new Error(`no MAC address found for ${this.tap}`);
    return m[1]!;
  }

  /** RX/TX packet counters of the tap inside the namespace (`ip -s`). */
  stats(): { rxPackets: number; txPackets: number } {
    const out = ip(['-n', this.netns, '-s', '-j', 'link', 'show', this.tap]);
    const j = JSON.parse(out) as Array<{ stats64?: { rx: { packets: number }; tx: { packets: number } } }>;
    const s = j[0]?.stats64;
    return { rxPackets: s?.rx.packets ?? -1, txPackets: s?.tx.packets ?? -1 };
  }

  /** Delete the namespace (which deletes the tap in it) or the tap itself. Idempotent, never throws. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.moved) {
      try {
        ip(['netns', 'del', this.netns]);
      } catch {
        // already gone
      }
    }
    try {
      ip(['link', 'del', this.tap]);
    } catch {
      // it went with the namespace
    }
  }
}
