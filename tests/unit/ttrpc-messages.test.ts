import t from 'tap';
import { MalformedMessage, decodeRequest, decodeResponse, encodeRequest, encodeResponse } from '../../src/agent/ttrpc.js';

t.test('Request round trip keeps every field, metadata order included', async (t) => {
  const req = { service: 'kata_ts.agent.AgentService', method: 'WaitProcess', payload: Buffer.from([1, 2, 3]), timeout_nano: 5_000_000_000, metadata: [{ key: 'a', value: '1' }, { key: 'a', value: '2' }] };
  const back = decodeRequest(encodeRequest(req));
  t.equal(back.service, req.service);
  t.equal(back.method, req.method);
  t.same([...back.payload], [1, 2, 3]);
  t.equal(back.timeout_nano, 5_000_000_000, 'int64 beyond 32 bits');
  t.same(back.metadata, req.metadata);
});

t.test('Request bytes match the protobuf encoding containerd produces', async (t) => {
  // field 1 "S", field 2 "M", field 3 [0x09], field 4 varint 300
  const bytes = encodeRequest({ service: 'S', method: 'M', payload: Buffer.of(9), timeout_nano: 300, metadata: [] });
  t.same([...bytes], [0x0a, 1, 0x53, 0x12, 1, 0x4d, 0x1a, 1, 9, 0x20, 0xac, 0x02]);
});

t.test('Response: OK sends no status; an error status is google.rpc.Status{code,message} in field 1', async (t) => {
  t.same([...encodeResponse({ status: null, payload: Buffer.of(8, 1) })], [0x12, 2, 8, 1]);
  t.same([...encodeResponse({ status: { code: 0, message: '' }, payload: Buffer.alloc(0) })], [], 'code 0 is OK: left out');
  const err = encodeResponse({ status: { code: 5, message: 'x' }, payload: Buffer.alloc(0) });
  t.same([...err], [0x0a, 5, 0x08, 5, 0x12, 1, 0x78]);
  t.same(decodeResponse(err).status, { code: 5, message: 'x' });
  t.equal(decodeResponse(Buffer.of(0x12, 2, 8, 1)).status, null, 'absent status decodes as null');
});

t.test('a status with details (google.protobuf.Any, field 3) decodes; the details are skipped', async (t) => {
  const withDetails = Buffer.of(0x0a, 9, 0x08, 3, 0x12, 1, 0x62, 0x1a, 2, 0x0a, 0);
  t.same(decodeResponse(withDetails).status, { code: 3, message: 'b' });
});

t.test('malformed payloads are MalformedMessage, not crashes', async (t) => {
  t.throws(() => decodeRequest(Buffer.of(0x0a, 50, 0x41)), MalformedMessage, 'length runs past the end');
  t.throws(() => decodeResponse(Buffer.of(0x0f)), MalformedMessage, 'wire type 7 does not exist');
  t.throws(() => decodeRequest(Buffer.of(0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)), MalformedMessage, 'varint longer than 10 bytes');
});
