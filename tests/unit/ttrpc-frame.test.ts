import t from 'tap';
import { FrameDecoder, MessageType, OversizeFrame, TTRPC_HEADER_LENGTH, TTRPC_MAX_MESSAGE, TruncatedFrame, UnknownMessageType, encodeFrame, type FrameEvent } from '../../src/agent/ttrpc.js';

function frames(evs: FrameEvent[]) {
  return evs.map((e) => (e.kind === 'frame' ? { id: e.frame.streamId, type: e.frame.type, flags: e.frame.flags, p: e.frame.payload.toString() } : { err: e.error.name, id: e.streamId }));
}

function rawHeader(length: number, streamId: number, type: number, flags = 0): Buffer {
  const h = Buffer.alloc(TTRPC_HEADER_LENGTH);
  h.writeUInt32BE(length, 0);
  h.writeUInt32BE(streamId, 4);
  h[8] = type;
  h[9] = flags;
  return h;
}

t.test('encodeFrame writes the containerd header: length, stream id, type, flags, big-endian', async (t) => {
  const f = encodeFrame(0x01020305, MessageType.Request, Buffer.from('abc'), 0x04);
  t.same([...f.subarray(0, 10)], [0, 0, 0, 3, 1, 2, 3, 5, 1, 4]);
  t.equal(f.subarray(10).toString(), 'abc');
});

t.test('round trip: several frames in one chunk, and the same bytes one at a time', async (t) => {
  const wire = Buffer.concat([encodeFrame(1, MessageType.Request, Buffer.from('one')), encodeFrame(3, MessageType.Response, Buffer.alloc(0)), encodeFrame(5, MessageType.Data, Buffer.from('x'), 1)]);
  const want = [
    { id: 1, type: 1, flags: 0, p: 'one' },
    { id: 3, type: 2, flags: 0, p: '' },
    { id: 5, type: 3, flags: 1, p: 'x' },
  ];
  t.same(frames(new FrameDecoder().push(wire)), want);
  const d = new FrameDecoder();
  const got: FrameEvent[] = [];
  for (const b of wire) got.push(...d.push(Buffer.of(b)));
  t.same(frames(got), want);
  t.equal(d.pending, 0);
  t.doesNotThrow(() => d.end());
});

t.test('exactly 4 MiB is accepted; one byte more is OversizeFrame on encode', async (t) => {
  const big = Buffer.alloc(TTRPC_MAX_MESSAGE, 7);
  const evs = new FrameDecoder().push(encodeFrame(1, MessageType.Request, big));
  t.equal(evs.length, 1);
  t.equal(evs[0]!.kind === 'frame' && evs[0]!.frame.payload.length, TTRPC_MAX_MESSAGE);
  t.throws(() => encodeFrame(1, MessageType.Request, Buffer.alloc(TTRPC_MAX_MESSAGE + 1)), OversizeFrame);
});

t.test('an oversize length is reported, its payload skipped, and the next frame still decodes', async (t) => {
  const d = new FrameDecoder(16);
  const evs = [...d.push(Buffer.concat([rawHeader(20, 7, 1), Buffer.alloc(5)])), ...d.push(Buffer.alloc(15)), ...d.push(encodeFrame(9, MessageType.Request, Buffer.from('ok')))];
  t.same(frames(evs), [{ err: 'OversizeFrame', id: 7 }, { id: 9, type: 1, flags: 0, p: 'ok' }]);
  const e = evs[0]!.kind === 'error' ? evs[0]!.error : undefined;
  t.type(e, OversizeFrame);
  t.equal((e as OversizeFrame).length, 20);
  t.match(String(e?.message), /20 bytes, over the 16-byte limit/);
});

t.test('a 0xffffffff length never makes the decoder buffer: it discards while data arrives', async (t) => {
  const d = new FrameDecoder();
  const evs = d.push(rawHeader(0xffff_ffff, 1, 1));
  t.same(frames(evs), [{ err: 'OversizeFrame', id: 1 }]);
  d.push(Buffer.alloc(1 << 20));
  t.equal(d.pending, 0, 'nothing held');
  t.throws(() => d.end(), TruncatedFrame, 'ending inside the skipped payload is a truncation');
});

t.test('an unknown message type is reported after its payload; framing stays in sync', async (t) => {
  const d = new FrameDecoder();
  const evs = d.push(Buffer.concat([rawHeader(2, 3, 9), Buffer.from('zz'), encodeFrame(5, MessageType.Response, Buffer.from('r'))]));
  t.same(frames(evs), [{ err: 'UnknownMessageType', id: 3 }, { id: 5, type: 2, flags: 0, p: 'r' }]);
  t.type(evs[0]!.kind === 'error' && evs[0]!.error, UnknownMessageType);
  t.same(frames(d.push(Buffer.concat([rawHeader(0, 1, 0)]))), [{ err: 'UnknownMessageType', id: 1 }], 'type 0 is unknown too');
});

t.test('truncated: the stream ends inside the header, or inside the payload', async (t) => {
  const d1 = new FrameDecoder();
  d1.push(Buffer.from([0, 0, 0]));
  t.throws(() => d1.end(), { name: 'TruncatedFrame', have: 3, need: 10 });
  const d2 = new FrameDecoder();
  t.same(d2.push(Buffer.concat([rawHeader(10, 1, 1), Buffer.alloc(4)])), []);
  t.throws(() => d2.end(), { name: 'TruncatedFrame', have: 14, need: 20 });
});

t.test('encodeFrame refuses stream ids and flags outside their fields', async (t) => {
  t.throws(() => encodeFrame(-1, MessageType.Request, Buffer.alloc(0)), RangeError);
  t.throws(() => encodeFrame(2 ** 32, MessageType.Request, Buffer.alloc(0)), RangeError);
  t.throws(() => encodeFrame(1, MessageType.Request, Buffer.alloc(0), 256), RangeError);
});
