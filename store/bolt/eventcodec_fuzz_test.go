package bolt

import (
	"hookd/store"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
)

// FuzzEventRecord decodes any bytes as an event record: no input may make
// the decoders panic, and what decodes encodes to a version 4 record that
// decodes to the same event.
func FuzzEventRecord(f *testing.F) {
	refs := codecRefs(f)
	e := tokenEvent()
	e.JWS = tokenFor(f, &e, "https://hooks.example/c/webhooks", "RS256", 256)
	e.Response = &store.Response{StatusCode: 204, Headers: []store.Header{{Name: "Date", Value: "Tue, 01 Dec 2026 12:00:01 GMT"}, {Name: "X", Value: "y"}}}
	f.Add(encode(f, &e, refs))
	f.Add(appendEventV3(nil, &e))
	f.Add(appendEventV2(&e))
	f.Add(appendEventV1(&e))
	s := codecSample()
	s.Txn, s.Jti, s.FailedAt = "not a uuid", uuid.UUID{}, s.CreatedAt.Add(time.Hour)
	f.Add(encode(f, &s, refs))
	f.Fuzz(func(t *testing.T, b []byte) {
		recordState(b)
		recordReason(b)
		recordFailSeq(b)
		recordFailedAtNanos(b)
		recordCreatedAt(b)
		refs.typeMatch("entityCreated").match(b)
		var x store.ExportEvent
		_ = decodeExportEvent(b, &x, new([]byte), refs)
		var got store.Event
		if err := decodeEvent(b, &got, refs); err != nil {
			return
		}
		rec, err := appendEvent(nil, &got, refs, 0)
		if err != nil {
			t.Fatalf("encode a decoded event: %v", err)
		}
		var again store.Event
		if err := decodeEvent(rec, &again, refs); err != nil {
			t.Fatalf("decode a record written from a decoded one: %v", err)
		}
		if !reflect.DeepEqual(again, got) {
			t.Fatalf("the event changed through a record:\ngot  %+v\nwant %+v", again, got)
		}
		// The outcome path's rewrite, which copies the record's encoded
		// event object and token, gives a record of the same event.
		var kg store.Event
		var kept keptParts
		if err := decodeEventKept(b, &kg, refs, &kept); err != nil {
			t.Fatalf("a record that decodes does not decode for a rewrite: %v", err)
		}
		rewritten, err := appendEventKept(nil, &kg, refs, 0, &kept)
		if err != nil {
			t.Fatalf("rewrite a decoded event: %v", err)
		}
		again = store.Event{}
		if err := decodeEvent(rewritten, &again, refs); err != nil {
			t.Fatalf("decode a rewritten record: %v", err)
		}
		if !reflect.DeepEqual(again, got) {
			t.Fatalf("the event changed through a rewrite:\ngot  %+v\nwant %+v", again, got)
		}
	})
}
