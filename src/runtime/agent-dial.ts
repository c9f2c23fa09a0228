// Reaching the guest agent of a booting VM: connect to its ttRPC port over the hypervisor's host vsock and
// retry until its Health/Check answers SERVING, the VM exits, or the dial timeout ([agent] dial_timeout) passes.
// The Sandbox (sandbox.ts) takes any AgentConnector; tests hand it one over an in-memory stream.

import { AgentClient, AGENT_TTRPC_PORT, ServingStatus } from '../agent/index.js';
import type { Hypervisor } from '../hypervisor/interface.js';

/** Gives the Sandbox a connected, healthy agent client for a started VM. */
export type AgentConnector = (hv: Hypervisor) => Promise<AgentClient>;

export interface DialOptions {
  /** give up after this long ([agent] dial_timeout) */
  dialTimeoutMs: number;
  /** default per-call timeout of the client ([agent] request_timeout) */
  requestTimeoutMs: number;
  /** pause between attempts; default 50 ms */
  retryMs?: number;
}

/** The default connector: the agent's ttRPC port over `hv.vsock`. */
export function vsockAgentConnector(o: DialOptions): AgentConnector {
  return async (hv) => {
    const vsock = hv.vsock;
    if (!vsock) throw new Error(`the ${hv.kind} hypervisor offers no host vsock API: the agent cannot be reached`);
    const deadline = Date.now() + o.dialTimeoutMs;
    let last = '';
    let exited = false;
    void hv.wait().then(() => (exited = true));
    while (Date.now() < deadline && !exited) {
      try {
        const c = new AgentClient(await vsock.connect(AGENT_TTRPC_PORT, { timeoutMs: 2000 }), { timeoutMs: o.requestTimeoutMs });
        const h = await c.check({}, { timeoutMs: 5000 });
        if (h.status === ServingStatus.SERVING) return c;
        c.close();
        last = `health status ${h.status}`;
      } catch (e) {
        last = (e as Error).message;
      }
      await new Promise((r) => setTimeout(r, o.retryMs ?? 50));
    }
    const tail = hv.consoleText.trim().split('\n').slice(-3).join(' | ');
    throw new Error(`the guest agent did not answer within ${o.dialTimeoutMs} ms (${exited ? 'the VM exited' : last}); console: ${tail}`);
  };
}
