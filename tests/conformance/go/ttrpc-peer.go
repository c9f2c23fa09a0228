// ttrpc-peer: containerd's own ttrpc (Debian golang-github-containerd-ttrpc-dev, 1.1.x) as a conformance peer
// for the kata-ts ttRPC codecs (TypeScript in src/agent/, C++ in guest/agent/).
//
// Built offline: GOPATH=/usr/share/gocode GO111MODULE=off go build -o ttrpc-peer ttrpc-peer.go
//
//	ttrpc-peer serve <unix-socket>
//	    Serves until killed; prints "READY" once listening. Services:
//	      kata_ts.test.Echo/Echo   ttrpc.KeyValue -> KeyValue{key: key+"/go", value: upper(value)+";md="+metadata["x-test"]+";deadline="+yes|no}
//	      kata_ts.test.Echo/Fail   -> status NOT_FOUND "no such thing: <key>"
//	      kata_ts.test.Echo/Sleep  KeyValue{value: "300ms"} sleeps that long (default 10 s), ignoring deadlines -> {key: "slept"}
//	      kata_ts.agent.Health/Check -> HealthCheckResponse{status: SERVING} (bytes 08 01)
//	ttrpc-peer call <unix-socket> <service> <method> <payload-hex|-> [timeout-ms] [key=value ...]
//	    One unary call ("-": the hex payload is read from stdin) with containerd's client; prints one JSON line:
//	      {"ok":true,"payload":"<hex>"} or {"ok":false,"code":N,"message":"..."}
//	    Exit status 0 when a response (OK or error status) arrived, 2 when dialing or the transport failed.
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// raw carries an already-encoded protobuf payload through ttrpc's gogo codec (proto.Marshaler/Unmarshaler).
type raw struct{ b []byte }

func (r *raw) Reset()                   { r.b = nil }
func (r *raw) String() string           { return hex.EncodeToString(r.b) }
func (r *raw) ProtoMessage()            {}
func (r *raw) Marshal() ([]byte, error) { return r.b, nil }
func (r *raw) Unmarshal(p []byte) error { r.b = append([]byte(nil), p...); return nil }

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "ttrpc-peer: "+format+"\n", args...)
	os.Exit(2)
}

func serve(path string) {
	s, err := ttrpc.NewServer()
	if err != nil {
		fail("new server: %v", err)
	}
	s.Register("kata_ts.test.Echo", map[string]ttrpc.Method{
		"Echo": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var kv ttrpc.KeyValue
			if err := unmarshal(&kv); err != nil {
				return nil, err
			}
			md, _ := ttrpc.GetMetadata(ctx)
			mdv, _ := md.Get("x-test")
			_, hasDeadline := ctx.Deadline()
			dl := "no"
			if hasDeadline {
				dl = "yes"
			}
			return &ttrpc.KeyValue{Key: kv.Key + "/go", Value: strings.ToUpper(kv.Value) + ";md=" + strings.Join(mdv, ",") + ";deadline=" + dl}, nil
		},
		"Fail": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var kv ttrpc.KeyValue
			if err := unmarshal(&kv); err != nil {
				return nil, err
			}
			return nil, status.Errorf(codes.NotFound, "no such thing: %s", kv.Key)
		},
		"Sleep": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			// Sleeps for the duration in value ("300ms"; default 10s), ignoring the deadline on purpose, so
			// only the client's own timeout can end the call early.
			var kv ttrpc.KeyValue
			if err := unmarshal(&kv); err != nil {
				return nil, err
			}
			d, err := time.ParseDuration(kv.Value)
			if err != nil {
				d = 10 * time.Second
			}
			time.Sleep(d)
			return &ttrpc.KeyValue{Key: "slept"}, nil
		},
	})
	s.Register("kata_ts.agent.Health", map[string]ttrpc.Method{
		"Check": func(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
			var req raw
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			return &raw{b: []byte{0x08, 0x01}}, nil
		},
	})
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		fail("listen %s: %v", path, err)
	}
	fmt.Println("READY")
	if err := s.Serve(context.Background(), l); err != nil {
		fail("serve: %v", err)
	}
}

func call(args []string) {
	if len(args) < 4 {
		fail("usage: call <socket> <service> <method> <payload-hex> [timeout-ms] [key=value ...]")
	}
	payloadHex := args[3]
	if payloadHex == "-" { // large payloads come on stdin (argv strings are limited to 128 KiB)
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			fail("reading the payload from stdin: %v", err)
		}
		payloadHex = strings.TrimSpace(string(b))
	}
	payload, err := hex.DecodeString(payloadHex)
	if err != nil {
		fail("payload is not hex: %v", err)
	}
	timeout := 10 * time.Second
	if len(args) > 4 {
		ms, err := strconv.Atoi(args[4])
		if err != nil {
			fail("timeout-ms: %v", err)
		}
		timeout = time.Duration(ms) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	md := ttrpc.MD{}
	var pairs []string
	if len(args) > 5 {
		pairs = args[5:]
	}
	for _, kv := range pairs {
		parts := strings.SplitN(kv, "=", 2)
		if len(parts) == 2 {
			md.Append(parts[0], parts[1])
		}
	}
	if len(md) > 0 {
		ctx = ttrpc.WithMetadata(ctx, md)
	}
	conn, err := net.Dial("unix", args[0])
	if err != nil {
		fail("dial %s: %v", args[0], err)
	}
	c := ttrpc.NewClient(conn)
	defer c.Close()
	var resp raw
	err = c.Call(ctx, args[1], args[2], &raw{b: payload}, &resp)
	out := map[string]interface{}{}
	if err != nil {
		st, ok := status.FromError(err)
		if !ok {
			fail("call: %v", err)
		}
		out["ok"] = false
		out["code"] = int(st.Code())
		out["message"] = st.Message()
	} else {
		out["ok"] = true
		out["payload"] = hex.EncodeToString(resp.b)
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
}

func main() {
	if len(os.Args) < 3 {
		fail("usage: ttrpc-peer serve <socket> | call <socket> <service> <method> <payload-hex> [timeout-ms] [k=v ...]")
	}
	switch os.Args[1] {
	case "serve":
		serve(os.Args[2])
	case "call":
		call(os.Args[2:])
	default:
		fail("unknown command %q", os.Args[1])
	}
}
