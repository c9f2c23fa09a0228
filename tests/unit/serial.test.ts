import t from 'tap';
import { createSerialState, Serial8250, SerialState, serialPushInput } from '../../src/vmm/devices/serial.js';
import type { VcpuEvent } from '../../src/vmm/events.js';

function uart() {
  const sab = createSerialState();
  const events: VcpuEvent[] = [];
  let irqs = 0;
  const dev = new Serial8250(new SerialState(sab), (e) => events.push(e), () => irqs++);
  const rd = (off: number): number => {
    const d = new Uint8Array(1);
    dev.read(off, d);
    return d[0]!;
  };
  const wr = (off: number, v: number): void => void dev.write(off, Uint8Array.of(v));
  return { sab, dev, events, rd, wr, irqs: () => irqs };
}

t.test('THR writes reach the console; LSR says the transmitter is empty', async (t) => {
  const u = uart();
  for (const c of 'hi') u.wr(0, c.charCodeAt(0));
  t.same(u.events.map((e) => (e.type === 'console' ? String.fromCharCode(e.bytes[0]!) : '?')).join(''), 'hi');
  t.equal(u.rd(5) & 0x60, 0x60, 'THRE and TEMT');
  t.equal(u.irqs(), 0, 'no interrupt while IER is 0');
});

t.test('the kernel probe sees a 16550A: IER read-back and FIFO bits', async (t) => {
  const u = uart();
  u.wr(1, 0x0f);
  t.equal(u.rd(1), 0x0f, 'IER reads back');
  u.wr(1, 0);
  t.equal(u.rd(1), 0);
  t.equal(u.rd(2) & 0xc0, 0xc0, 'FIFO enabled bits');
  t.equal(u.rd(2) & 0x0f, 0x01, 'no interrupt pending');
  u.wr(3, 0x80);
  u.wr(0, 0x01);
  u.wr(1, 0x00);
  t.equal(u.rd(0), 0x01, 'DLL with DLAB');
  u.wr(3, 0x03);
  u.wr(7, 0x5a);
  t.equal(u.rd(7), 0x5a, 'scratch register');
});

t.test('THRE interrupt: raised on enable and after each byte, cleared by reading IIR', async (t) => {
  const u = uart();
  u.wr(1, 0x02);
  t.equal(u.irqs(), 1, 'enabling THRE with an empty THR interrupts');
  t.equal(u.rd(2) & 0x0f, 0x02, 'IIR says THRE');
  t.equal(u.rd(2) & 0x0f, 0x01, 'reading IIR cleared it');
  u.wr(0, 0x41);
  t.equal(u.irqs(), 2);
});

t.test('input: RDA interrupt, LSR.DR and RBR', async (t) => {
  const u = uart();
  const st = new SerialState(u.sab);
  t.same(serialPushInput(st, Uint8Array.of(0x61, 0x62)), { accepted: 2, raiseIrq: false }, 'no irq while RDA disabled');
  u.wr(1, 0x01);
  t.equal(u.irqs(), 1, 'enabling RDA with data waiting interrupts');
  t.equal(u.rd(5) & 1, 1, 'DR set');
  t.equal(u.rd(2) & 0x0f, 0x04, 'IIR says RDA');
  t.equal(u.rd(0), 0x61);
  t.equal(u.rd(0), 0x62);
  t.equal(u.rd(5) & 1, 0, 'DR clear when empty');
  t.same(serialPushInput(st, Uint8Array.of(0x63)), { accepted: 1, raiseIrq: true });
});

t.test('loopback mode keeps bytes off the console', async (t) => {
  const u = uart();
  u.wr(4, 0x10);
  u.wr(0, 0x55);
  t.equal(u.events.length, 0);
  t.equal(u.rd(0), 0x55, 'looped back into RBR');
});
