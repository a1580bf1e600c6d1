package jobs

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

// TestExportLineCarriesTheSendersID: an event that never was signed gets
// the claims it would have been signed with, whose jti is the sender's id
// when it gave one.
func TestExportLineCarriesTheSendersID(t *testing.T) {
	customer, sender := uuid.New(), uuid.New()
	for _, tt := range []struct {
		name string
		jti  uuid.UUID
	}{{"sender's id", sender}, {"no sender id", uuid.UUID{}}} {
		t.Run(tt.name, func(t *testing.T) {
			x := store.ExportEvent{ID: uuid.New(), Jti: tt.jti, CreatedAt: time.Unix(1700000000, 0), Toe: 1,
				Type: []byte("entityCreated"), Txn: []byte("t"), Endpoint: []byte("https://l.example/h"), Payload: []byte(`{}`)}
			b := newLineBuilder("https://hooks.example", customer)
			if err := b.add(&x); err != nil {
				t.Fatal(err)
			}
			var c struct{ Jti string }
			if err := json.Unmarshal(b.buf, &c); err != nil {
				t.Fatal(err)
			}
			want := x.ID.String()
			if tt.jti != (uuid.UUID{}) {
				want = tt.jti.String()
			}
			if c.Jti != want {
				t.Errorf("jti: got %s, want %s", c.Jti, want)
			}
		})
	}
}
