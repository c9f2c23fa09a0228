// MAC address for the config space (virtio 1.2 §5.1.4: mac is valid when VIRTIO_NET_F_MAC is offered).

import { randomBytes } from 'node:crypto';

export class InvalidMac extends Error {
  constructor(text: string, why: string) {
    super(`MAC address "${text}" ${why}: give six hex octets like 52:54:00:12:34:56 (unicast)`);
    this.name = 'InvalidMac';
  }
}

/** Parse "aa:bb:cc:dd:ee:ff" (or with '-'); refuses multicast addresses (a NIC address must be unicast). */
export function parseMac(text: string): Uint8Array {
  const parts = text.split(/[:-]/);
  if (parts.length !== 6) throw new InvalidMac(text, 'does not have six octets');
  const mac = new Uint8Array(6);
  parts.forEach((p, i) => {
    if (!/^[0-9a-fA-F]{2}$/.test(p)) throw new InvalidMac(text, `has a bad octet "${p}"`);
    mac[i] = parseInt(p, 16);
  });
  // IEEE 802: bit 0 of the first octet is the group (multicast) bit.
  if (mac[0]! & 1) throw new InvalidMac(text, 'is a multicast address');
  return mac;
}

export function formatMac(mac: Uint8Array): string {
  return Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join(':');
}

/** A random locally administered unicast address (first octet: bit 1 set, bit 0 clear). */
export function randomMac(): Uint8Array {
  const mac = new Uint8Array(randomBytes(6));
  mac[0] = (mac[0]! & 0xfe) | 0x02;
  return mac;
}
