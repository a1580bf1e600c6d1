package bolt

import (
	"encoding/binary"
	"hookd/store"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
)

func codecSample() store.Event {
	at := time.Date(2026, 11, 1, 12, 0, 0, 123, time.UTC)
	return store.Event{
		ID: uuid.New(), Jti: uuid.New(), Type: "entityCreated", Txn: uuid.NewString(), Toe: 1700000000,
		Payload: []byte(`{"sub":"u"}`), Endpoint: "https://l.example/h", CreatedAt: at, UpdatedAt: at.Add(time.Second),
		State: store.AwaitingRetry, Reason: store.ReasonStatus5xx, Attempts: 1, DueAt: at.Add(time.Minute), JWS: "a.b.c",
		Response: &store.Response{StatusCode: 500, Headers: []store.Header{{Name: "X", Value: "y"}}},
		History: []store.HistoryEntry{
			{At: at, State: store.AwaitingExecuting},
			{At: at, State: store.Executing, Attempt: 1, Endpoint: "https://l.example/h"},
			{At: at.Add(time.Second), State: store.AwaitingRetry, Attempt: 1, StatusCode: 500, Reason: "status 500", Code: store.ReasonStatus5xx},
		},
	}
}

func TestEventCodecRoundTrip(t *testing.T) {
	e := codecSample()
	var got store.Event
	if err := decodeEvent(appendEvent(nil, &e), &got); err != nil {
		t.Fatal(err)
	}
	if recordReason(appendEvent(nil, &e)) != store.ReasonStatus5xx {
		t.Errorf("recordReason: got %v, want status-5xx", recordReason(appendEvent(nil, &e)))
	}
	if !reflect.DeepEqual(got, e) {
		t.Errorf("decoded event:\ngot  %+v\nwant %+v", got, e)
	}
}

// appendEventV1 encodes e as hookd wrote records before version 2: the
// same layout without the history rows' endpoints.
func appendEventV1(e *store.Event) []byte {
	bare := *e
	bare.History = nil
	b := appendEvent(nil, &bare)
	b = b[:len(b)-1] // the history count, 0
	b[0] = codecVersion1
	b = append(b[:offReason], b[offReason+17:]...) // no reason code, no sender id
	b = binary.AppendUvarint(b, uint64(len(e.History)))
	for _, h := range e.History {
		b = appendTime(b, h.At)
		b = append(b, byte(h.State))
		b = binary.AppendUvarint(b, uint64(h.Attempt))
		b = binary.AppendUvarint(b, uint64(h.StatusCode))
		b = appendString(b, h.Reason)
	}
	return b
}

func TestEventCodecReadsVersion1(t *testing.T) {
	e := codecSample()
	e.Reason, e.History[2].Code, e.Jti = store.ReasonNone, store.ReasonNone, uuid.UUID{}
	e.History[1].Endpoint = "" // version 1 recorded neither endpoints nor codes
	var got store.Event
	if err := decodeEvent(appendEventV1(&e), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Errorf("decoded version 1 event:\ngot  %+v\nwant %+v", got, e)
	}
	var x store.ExportEvent
	if err := decodeExportEvent(appendEventV1(&e), &x); err != nil {
		t.Fatal(err)
	}
	if x.ID != e.ID || string(x.JWS) != e.JWS || string(x.Endpoint) != e.Endpoint {
		t.Errorf("export view of a version 1 record: got id %s, token %q, endpoint %q", x.ID, x.JWS, x.Endpoint)
	}
}

// TestRecordType reads the type of encoded events without decoding them.
func TestRecordType(t *testing.T) {
	for _, typ := range []string{"entityCreated", "entityDeleted", ""} {
		e := store.Event{ID: uuid.New(), Type: typ, Txn: "t", Toe: -5, Attempts: 300, RoundStart: 200, CreatedAt: time.Now()}
		if got := string(recordType(appendEvent(nil, &e))); got != typ {
			t.Errorf("got %q, want %q", got, typ)
		}
	}
	if got := recordType([]byte{codecVersion}); got != nil {
		t.Errorf("short record: got %q, want nil", got)
	}
}
