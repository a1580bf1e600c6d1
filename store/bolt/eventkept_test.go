package bolt

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

// A record rewritten with its kept parts (the outcome path of
// RecordAttempts) is byte for byte the record that encoding the whole
// event gives, and decodes to the same event: for a new token, for an
// attempt that made none (the stored token kept), for the token of a new
// endpoint, for event objects stored raw and compressed, and for records
// of an older version, which keep nothing.
func TestRewriteWithKeptParts(t *testing.T) {
	refs := codecRefs(t)
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	issuer := "https://hooks.example/" + uuid.NewString() + "/webhooks"
	newEvent := func(payload []byte) store.Event {
		return store.Event{ID: uuid.New(), Type: "entityUpdated", Txn: uuid.NewString(), Toe: at.Unix(),
			Payload: payload, Endpoint: "", CreatedAt: at, UpdatedAt: at, State: store.AwaitingExecuting,
			History: []store.HistoryEntry{{At: at, State: store.AwaitingExecuting}}}
	}
	const endpoint, other = "https://l.example/hook", "https://m.example/hook"
	// attempt changes e as RecordAttempts does: a new token for endpoint
	// unless it is empty, a response, two history rows.
	attempt := func(e *store.Event, endpoint string, sig byte) {
		e.Attempts++
		if endpoint != "" {
			e.Endpoint = endpoint
			e.JWS = rs256Token(e, issuer, endpoint, bytes.Repeat([]byte{sig}, 256))
		}
		e.UpdatedAt = e.UpdatedAt.Add(time.Second)
		e.Response = &store.Response{StatusCode: 500, Headers: []store.Header{{Name: "Date", Value: e.UpdatedAt.Format("Mon, 02 Jan 2006 15:04:05 GMT")}}}
		e.History = append(e.History,
			store.HistoryEntry{At: e.UpdatedAt, State: store.Executing, Attempt: e.Attempts, Endpoint: e.Endpoint},
			store.HistoryEntry{At: e.UpdatedAt, State: store.AwaitingRetry, Attempt: e.Attempts, StatusCode: 500, Reason: "status 500", Code: store.ReasonStatus5xx})
		e.State, e.DueAt = store.AwaitingRetry, e.UpdatedAt.Add(time.Second)
	}
	payloads := map[string][]byte{
		"compressed": benchEventObject(),
		"raw":        []byte(`{"sub":"u"}`),
		"empty":      nil,
	}
	for name, payload := range payloads {
		t.Run(name, func(t *testing.T) {
			e := newEvent(payload)
			rec := encode(t, &e, refs)
			var kept keptParts
			steps := []struct {
				endpoint string // "": the attempt made no token
				sig      byte
			}{{endpoint, 1}, {"", 0}, {endpoint, 2}, {other, 3}, {"", 0}}
			for i, step := range steps {
				var got store.Event
				if err := decodeEventKept(rec, &got, refs, &kept); err != nil {
					t.Fatal(err)
				}
				if got.JWS != "" || !bytes.Equal(got.Payload, e.Payload) {
					t.Fatalf("step %d: decoded for a rewrite: token %q, payload %q; want no token, payload %q", i, got.JWS, got.Payload, e.Payload)
				}
				attempt(&e, step.endpoint, step.sig)
				attempt(&got, step.endpoint, step.sig)
				kept := kept
				rewritten, err := appendEventKept(nil, &got, refs, 0, &kept)
				if err != nil {
					t.Fatal(err)
				}
				if want := encode(t, &e, refs); !bytes.Equal(rewritten, want) {
					t.Fatalf("step %d: rewritten record differs from the whole encoding:\ngot  %x\nwant %x", i, rewritten, want)
				}
				var back store.Event
				if err := decodeEvent(rewritten, &back, refs); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(back, e) {
					t.Fatalf("step %d: rewritten record decodes to\n%+v\nwant\n%+v", i, back, e)
				}
				rec = rewritten
			}
		})
	}
	t.Run("version 3", func(t *testing.T) {
		e := newEvent(benchEventObject())
		attempt(&e, endpoint, 1)
		rec := appendEventV3(nil, &e)
		var got store.Event
		var kept keptParts
		if err := decodeEventKept(rec, &got, refs, &kept); err != nil {
			t.Fatal(err)
		}
		if kept.payload != nil || kept.token != nil || got.JWS != e.JWS {
			t.Fatalf("a version 3 record kept parts (%d and %d bytes) or lost its token %q", len(kept.payload), len(kept.token), got.JWS)
		}
		attempt(&e, "", 0)
		attempt(&got, "", 0)
		rewritten, err := appendEventKept(nil, &got, refs, 0, &kept)
		if err != nil {
			t.Fatal(err)
		}
		if want := encode(t, &e, refs); !bytes.Equal(rewritten, want) {
			t.Fatalf("rewritten version 3 record differs from the whole encoding")
		}
	})
}

// payloadInto decodes into the buffer it is given and appends: a buffer
// with room allocates nothing, and what it held before stays.
func TestPayloadIntoReusesItsBuffer(t *testing.T) {
	p := benchEventObject()
	rec := appendPayload(nil, p)
	buf := append(make([]byte, 0, 4096), "kept"...)
	allocs := testing.AllocsPerRun(100, func() {
		d := decoder{b: rec}
		var got []byte
		buf, got = d.payloadInto(buf[:4])
		if d.err != nil || !bytes.Equal(got, p) || string(buf[:4]) != "kept" {
			t.Fatalf("payloadInto: %v, %q, buffer %q", d.err, got, buf[:4])
		}
	})
	if allocs != 0 {
		t.Errorf("payloadInto with room allocated %.0f times per call", allocs)
	}
}

// payload, which the lanes' reads use, decodes on the stack and returns
// the event object in one allocation of its own size (its size class).
func TestPayloadAllocatesItsSizeOnce(t *testing.T) {
	p := benchEventObject()
	rec := appendPayload(nil, p)
	var got []byte
	allocs := testing.AllocsPerRun(100, func() {
		d := decoder{b: rec}
		got = d.payload()
	})
	if !bytes.Equal(got, p) || cap(got) > len(p)+len(p)/8 || allocs != 1 {
		t.Errorf("payload: %q (capacity %d for %d bytes), %.0f allocations; want the object in one allocation of its size", got, cap(got), len(p), allocs)
	}
}
