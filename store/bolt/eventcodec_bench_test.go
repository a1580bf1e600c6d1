package bolt

import (
	"hookd/store"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
)

// BenchmarkEventRecord encodes and decodes a delivered event of the bench's
// full store (RS256 token, a Date header, three history rows) in the
// current record version and, for reference, in version 3.
func BenchmarkEventRecord(b *testing.B) {
	refs := codecRefs(b)
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	e := store.Event{ID: store.EventID(42, [10]byte{1}), Type: "entityUpdated", Txn: uuid.NewString(), Toe: at.Unix(),
		Payload: benchEventObject(), Endpoint: "https://listener-7.example.com/webhooks/hookd", CreatedAt: at,
		UpdatedAt: at.Add(70 * time.Millisecond), State: store.Success, Attempts: 1}
	e.JWS = rs256Token(&e, "https://hooks.example.com/"+uuid.NewString()+"/webhooks", e.Endpoint, make([]byte, 256))
	e.Response = &store.Response{StatusCode: 204, Headers: []store.Header{{Name: "Date", Value: at.Add(50 * time.Millisecond).Format(http.TimeFormat)}}}
	e.History = []store.HistoryEntry{{At: at, State: store.AwaitingExecuting},
		{At: at.Add(50 * time.Millisecond), State: store.Executing, Attempt: 1, Endpoint: e.Endpoint},
		{At: at.Add(70 * time.Millisecond), State: store.Success, Attempt: 1, StatusCode: 204}}
	v4, v3 := encode(b, &e, refs), appendEventV3(nil, &e)
	b.Run("encode", func(b *testing.B) {
		b.ReportMetric(float64(len(v4)), "record-bytes")
		for b.Loop() {
			if _, err := appendEvent(nil, &e, refs, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			var got store.Event
			if err := decodeEvent(v4, &got, refs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("version3-encode", func(b *testing.B) {
		b.ReportMetric(float64(len(v3)), "record-bytes")
		for b.Loop() {
			appendEventV3(nil, &e)
		}
	})
	b.Run("version3-decode", func(b *testing.B) {
		for b.Loop() {
			var got store.Event
			if err := decodeEvent(v3, &got, refs); err != nil {
				b.Fatal(err)
			}
		}
	})
}
