import t from 'tap';
import { Bus, BusOverlap, InvalidBusRange } from '../../src/vmm/bus.js';

t.test('bus finds devices by range and offset', async (t) => {
  const bus = new Bus<string>();
  bus.insert(0x3f8, 8, 'com1', 'uart');
  bus.insert(0x60, 5, 'i8042', 'kbd');
  bus.insert(0xf4, 4, 'exit', 'exit');
  t.same(bus.find(0x3fd), { device: 'uart', offset: 5, name: 'com1' });
  t.same(bus.find(0x64), { device: 'kbd', offset: 4, name: 'i8042' });
  t.equal(bus.find(0x3f7), undefined, 'just below a device');
  t.equal(bus.find(0x400), undefined, 'just past a device');
  t.equal(bus.find(0xf6, 4), undefined, 'an access straddling the end of a device is not routed');
  t.ok(bus.find(0xf4, 4), 'a full-width access at the base is routed');
});

t.test('bus rejects overlapping and invalid ranges', async (t) => {
  const bus = new Bus<number>();
  bus.insert(0x100, 0x10, 'a', 1);
  t.throws(() => bus.insert(0x10f, 1, 'b', 2), BusOverlap, 'last byte overlaps');
  t.throws(() => bus.insert(0xf0, 0x11, 'c', 3), BusOverlap, 'first byte overlaps');
  t.throws(() => bus.insert(0x0, 0x1000, 'd', 4), BusOverlap, 'covers it');
  t.throws(() => bus.insert(0x200, 0, 'e', 5), InvalidBusRange);
  t.throws(() => bus.insert(-1, 1, 'f', 6), InvalidBusRange);
  bus.insert(0x110, 1, 'adjacent', 7);
  t.equal(bus.size, 2, 'adjacent range accepted, others refused');
});
