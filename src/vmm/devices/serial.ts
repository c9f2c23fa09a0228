// An 8250/16550A UART (COM1). Its registers live in a SharedArrayBuffer so every vCPU worker and the VM
// owner (which feeds console input) see one device; a small spin lock (Atomics) serialises access.
// Transmission is instant: THR writes go straight to the console sink and the transmitter is always
// empty. Interrupts leave through an irqfd on IRQ 4 (edge). Register semantics follow the 16550A data
// sheet as modelled by rust-vmm's vm-superio; the kernel probe (autoconfig) checks IER read-back and
// the FIFO bits in IIR.

import type { EventSink } from './io-device.js';
import type { VmExitReason } from '../../contract/exit-reason.js';
import type { IoDevice } from '../../contract/io-device.js';

// register offsets (DLAB=0 unless noted)
const DATA = 0; // RBR (read) / THR (write); DLL with DLAB
const IER = 1; // interrupt enable; DLM with DLAB
const IIR_FCR = 2; // IIR (read) / FCR (write)
const LCR = 3;
const MCR = 4;
const LSR = 5;
const MSR = 6;
const SCR = 7;

const LCR_DLAB = 0x80;
const IER_RDA = 0x01; // received data available
const IER_THRE = 0x02; // transmitter holding register empty
const IER_MASK = 0x0f;
const IIR_NONE = 0x01;
const IIR_THRE = 0x02;
const IIR_RDA = 0x04;
const IIR_FIFO_BITS = 0xc0;
const LSR_DR = 0x01;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;
const MCR_LOOP = 0x10;
const MSR_DEFAULT = 0xb0; // DCD | DSR | CTS

// Int32 slots in the shared state
const S_LOCK = 0;
const S_IER = 1;
const S_THRE_PENDING = 2;
const S_LCR = 3;
const S_MCR = 4;
const S_SCR = 5;
const S_DLL = 6;
const S_DLM = 7;
const S_RX_HEAD = 8; // next byte to read
const S_RX_COUNT = 9;
const S_WORDS = 16;
export const SERIAL_RX_CAPACITY = 4096;

/** Allocate the shared register file of one UART. */
export function createSerialState(): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(S_WORDS * 4 + SERIAL_RX_CAPACITY);
  const w = new Int32Array(sab, 0, S_WORDS);
  w[S_DLL] = 12; // 9600 baud, the reset value
  return sab;
}

/** One view of the shared UART state; each thread makes its own. */
export class SerialState {
  private readonly w: Int32Array;
  private readonly rx: Uint8Array;

  constructor(sab: SharedArrayBuffer) {
    this.w = new Int32Array(sab, 0, S_WORDS);
    this.rx = new Uint8Array(sab, S_WORDS * 4, SERIAL_RX_CAPACITY);
  }

  lock(): void {
    while (Atomics.compareExchange(this.w, S_LOCK, 0, 1) !== 0) {
      // contention is between a vCPU and the input feeder for a few instructions; spin
    }
  }

  unlock(): void {
    Atomics.store(this.w, S_LOCK, 0);
  }

  get(slot: number): number {
    return this.w[slot]!;
  }

  set(slot: number, v: number): void {
    this.w[slot] = v;
  }

  rxCount(): number {
    return this.w[S_RX_COUNT]!;
  }

  /** Append input bytes (caller holds the lock); returns how many fit. */
  rxPush(bytes: Uint8Array): number {
    let n = 0;
    for (const b of bytes) {
      const count = this.w[S_RX_COUNT]!;
      if (count >= SERIAL_RX_CAPACITY) break;
      this.rx[(this.w[S_RX_HEAD]! + count) % SERIAL_RX_CAPACITY] = b;
      this.w[S_RX_COUNT] = count + 1;
      n++;
    }
    return n;
  }

  /** Take one input byte (caller holds the lock). */
  rxPop(): number {
    const count = this.w[S_RX_COUNT]!;
    if (count === 0) return 0;
    const head = this.w[S_RX_HEAD]!;
    const b = this.rx[head]!;
    this.w[S_RX_HEAD] = (head + 1) % SERIAL_RX_CAPACITY;
    this.w[S_RX_COUNT] = count - 1;
    return b;
  }
}

/**
 * Feed console input into the UART from the owner's thread. Returns true when the guest enabled the
 * received-data interrupt, i.e. the caller should raise IRQ 4.
 */
export function serialPushInput(state: SerialState, bytes: Uint8Array): { accepted: number; raiseIrq: boolean } {
  state.lock();
  try {
    const accepted = state.rxPush(bytes);
    return { accepted, raiseIrq: accepted > 0 && (state.get(S_IER) & IER_RDA) !== 0 };
  } finally {
    state.unlock();
  }
}

export class Serial8250 implements IoDevice {
  constructor(
    private readonly state: SerialState,
    private readonly sink: EventSink,
    private readonly raiseIrq: () => void,
  ) {}

  read(offset: number, data: Uint8Array): void {
    const s = this.state;
    let v = 0;
    let irq = false;
    s.lock();
    try {
      const dlab = (s.get(S_LCR) & LCR_DLAB) !== 0;
      switch (offset) {
        case DATA:
          if (dlab) v = s.get(S_DLL);
          else {
            v = s.rxPop();
            // more input still waiting keeps the RDA interrupt asserted
            irq = s.rxCount() > 0 && (s.get(S_IER) & IER_RDA) !== 0;
          }
          break;
        case IER:
          v = dlab ? s.get(S_DLM) : s.get(S_IER);
          break;
        case IIR_FCR:
          if (s.get(S_THRE_PENDING)) {
            v = IIR_THRE;
            s.set(S_THRE_PENDING, 0); // reading IIR clears a THRE interrupt (16550A)
          } else if (s.rxCount() > 0 && (s.get(S_IER) & IER_RDA) !== 0) v = IIR_RDA;
          else v = IIR_NONE;
          v |= IIR_FIFO_BITS;
          break;
        case LCR:
          v = s.get(S_LCR);
          break;
        case MCR:
          v = s.get(S_MCR);
          break;
        case LSR:
          v = LSR_THRE | LSR_TEMT | (s.rxCount() > 0 ? LSR_DR : 0);
          break;
        case MSR:
          v = s.get(S_MCR) & MCR_LOOP ? ((s.get(S_MCR) & 0x0f) << 4) : MSR_DEFAULT;
          break;
        case SCR:
          v = s.get(S_SCR);
          break;
        default:
          v = 0xff;
      }
    } finally {
      s.unlock();
    }
    data.fill(0);
    data[0] = v;
    if (irq) this.raiseIrq();
  }

  write(offset: number, data: Uint8Array): VmExitReason | undefined {
    const s = this.state;
    const v = data[0]!;
    let out: number | undefined;
    let irq = false;
    s.lock();
    try {
      const dlab = (s.get(S_LCR) & LCR_DLAB) !== 0;
      switch (offset) {
        case DATA:
          if (dlab) s.set(S_DLL, v);
          else {
            if (s.get(S_MCR) & MCR_LOOP) s.rxPush(Uint8Array.of(v));
            else out = v;
            // the byte left at once: THR is empty again
            if (s.get(S_IER) & IER_THRE) {
              s.set(S_THRE_PENDING, 1);
              irq = true;
            }
          }
          break;
        case IER:
          if (dlab) s.set(S_DLM, v);
          else {
            const enabled = v & IER_MASK;
            s.set(S_IER, enabled);
            // enabling THRE while THR is empty raises the interrupt at once
            if (enabled & IER_THRE) {
              s.set(S_THRE_PENDING, 1);
              irq = true;
            } else s.set(S_THRE_PENDING, 0);
            if (enabled & IER_RDA && s.rxCount() > 0) irq = true;
          }
          break;
        case IIR_FCR:
          break; // FIFO control: the FIFO is always on and never overruns in this model
        case LCR:
          s.set(S_LCR, v);
          break;
        case MCR:
          s.set(S_MCR, v & 0x1f);
          break;
        case SCR:
          s.set(S_SCR, v);
          break;
        default:
          break; // LSR/MSR are read-only
      }
    } finally {
      s.unlock();
    }
    if (out !== undefined) this.sink({ type: 'console', bytes: Uint8Array.of(out) });
    if (irq) this.raiseIrq();
    return undefined;
  }
}
