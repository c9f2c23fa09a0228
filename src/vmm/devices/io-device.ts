// How a legacy device on a vCPU worker reports to the VM owner (console bytes, boot timer, test values).

import type { VcpuEvent } from '../events.js';

export type EventSink = (ev: VcpuEvent) => void;
