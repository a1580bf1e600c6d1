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
	refs := codecRefs(t)
	e := codecSample()
	e.FailSeq, e.ExportedAt, e.FailedAt = 300, e.CreatedAt.Add(-time.Hour), e.CreatedAt.Add(2*time.Second)
	rec := encode(t, &e, refs)
	var got store.Event
	if err := decodeEvent(rec, &got, refs); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Errorf("decoded event:\ngot  %+v\nwant %+v", got, e)
	}
	if r := recordReason(rec); r != store.ReasonStatus5xx {
		t.Errorf("recordReason: got %v, want status-5xx", r)
	}
	if s := recordFailSeq(rec); s != 300 {
		t.Errorf("recordFailSeq: got %d, want 300", s)
	}
	if !refs.typeMatch(e.Type).match(rec) || refs.typeMatch("entityDeleted").match(rec) {
		t.Errorf("typeMatch: the record of type %q matched %q or did not match its own", e.Type, "entityDeleted")
	}
	if r := recordFailedAtNanos(rec); r != e.FailedAt.UnixNano() {
		t.Errorf("recordFailedAtNanos: got %d, want %d", r, e.FailedAt.UnixNano())
	}
	e.FailedAt = time.Time{}
	if r := recordFailedAtNanos(encode(t, &e, refs)); r != 0 {
		t.Errorf("recordFailedAtNanos of an event that never failed: got %d, want 0", r)
	}
	if at := recordCreatedAt(rec); !at.Equal(e.CreatedAt) || recordState(rec) != e.State {
		t.Errorf("recordCreatedAt, recordState: got %v, %v", at, recordState(rec))
	}
}

// appendEventFields encodes e up to its payload, as versions 1 to 3 do,
// with version byte v.
func appendEventFields(e *store.Event, v byte) []byte {
	bare := *e
	bare.JWS, bare.Response, bare.History = "", nil, nil
	b := appendEventV3(nil, &bare)
	b = b[:len(b)-3] // no token (0), no response (0), no history (0)
	b[0] = v
	return b
}

// appendResponseV1to3 encodes r as versions 1 to 3 do.
func appendResponseV1to3(b []byte, r *store.Response) []byte {
	if r == nil {
		return binary.AppendUvarint(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(r.StatusCode)+1)
	b = binary.AppendUvarint(b, uint64(len(r.Headers)))
	for _, h := range r.Headers {
		b = appendString(b, h.Name)
		b = appendString(b, h.Value)
	}
	return b
}

// appendEventV2 encodes e as hookd wrote records of version 2: the token
// whole.
func appendEventV2(e *store.Event) []byte {
	b := appendEventFields(e, codecVersion2)
	b = appendString(b, e.JWS)
	b = appendResponseV1to3(b, e.Response)
	b = binary.AppendUvarint(b, uint64(len(e.History)))
	for _, h := range e.History {
		b = appendTime(b, h.At)
		b = append(b, byte(h.State))
		b = binary.AppendUvarint(b, uint64(h.Attempt))
		b = binary.AppendUvarint(b, uint64(h.StatusCode))
		b = appendString(b, h.Reason)
		b = append(b, byte(h.Code))
		b = appendString(b, h.Endpoint)
	}
	return b
}

// appendEventV1 encodes e as hookd wrote records before version 2: the
// same layout without the history rows' endpoints.
func appendEventV1(e *store.Event) []byte {
	b := appendEventFields(e, codecVersion1)
	b = append(b[:offReason], b[offReason+17:]...) // no reason code, no sender id
	b = appendString(b, e.JWS)
	b = appendResponseV1to3(b, e.Response)
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
	if err := decodeEvent(appendEventV1(&e), &got, strRefs{}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Errorf("decoded version 1 event:\ngot  %+v\nwant %+v", got, e)
	}
	var x store.ExportEvent
	if err := decodeExportEvent(appendEventV1(&e), &x, new([]byte), strRefs{}); err != nil {
		t.Fatal(err)
	}
	if x.ID != e.ID || string(x.JWS) != e.JWS || string(x.Endpoint) != e.Endpoint {
		t.Errorf("export view of a version 1 record: got id %s, token %q, endpoint %q", x.ID, x.JWS, x.Endpoint)
	}
}

// TestEventCodecRowEndpoints: a history row's endpoint that is the
// event's is written as one byte and read back as the event's; another
// endpoint (the subscription's endpoint moved) and none read back as they
// were.
func TestEventCodecRowEndpoints(t *testing.T) {
	e := codecSample()
	at := e.History[1].At
	e.History = append(e.History,
		store.HistoryEntry{At: at, State: store.Executing, Attempt: 2, Endpoint: "https://moved.example/h"},
		store.HistoryEntry{At: at, State: store.Executing, Attempt: 3, Endpoint: e.Endpoint},
		store.HistoryEntry{At: at, State: store.AwaitingRetry, Attempt: 3},
	)
	refs := codecRefs(t)
	rec := encode(t, &e, refs)
	var got store.Event
	if err := decodeEvent(rec, &got, refs); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Errorf("decoded event:\ngot  %+v\nwant %+v", got.History, e.History)
	}
	// Version 3 wrote a row of another endpoint as its text.
	other := e
	other.Endpoint = "https://other.example/h" // no row is the event's now
	v3 := appendEventV3(nil, &e)
	if saved := len(appendEventV3(nil, &other)) - len(v3); saved < 2*(len(e.Endpoint)) {
		t.Errorf("version 3: the rows of the event's endpoint saved %d bytes, want at least %d", saved, 2*len(e.Endpoint))
	}
	if err := decodeEvent(v3, &got, strRefs{}); err != nil || !reflect.DeepEqual(got, e) {
		t.Errorf("decoded version 3 event: %v\ngot  %+v\nwant %+v", err, got.History, e.History)
	}
}
