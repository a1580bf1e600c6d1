package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hookd/store/bolt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"gocloud.dev/blob/memblob"

	"hookd/blobsink"
	"hookd/secevent"
	"hookd/store"
	"hookd/wire"
)

// replayEvent is an event object the intake accepts.
const replayEvent = `{"captureApplicationId":"a","captureClientId":"c","entityType":"user","globalSub":"g","sub":"s"}`

// exportLine is an export line of an event with jti id, as the exporter
// writes one.
func exportLine(id uuid.UUID, toe int64) []byte {
	return secevent.AppendClaims(nil, secevent.Claims{
		Issuer: "https://hookd.example/c/webhooks", IssuedAt: 1700000000, ID: id.String(),
		Audience: []string{"https://old.example/hook"}, Txn: "0b5a3f0e-7d0c-4c1e-9a43-2b6f0c9d7e11",
		TimeOfEvent: toe, EventType: "entityCreated", Event: []byte(replayEvent),
	})
}

func TestParseClaimsLines(t *testing.T) {
	id := uuid.New()
	good := exportLine(id, 1700000001)
	p := intakeParser{claims: true}
	if err := p.parseLines(append(append([]byte{}, good...), '\n'), 0); err != nil || p.refusal() != nil {
		t.Fatalf("a line the exporter writes: got %v, %v; want it accepted", err, p.refusal())
	}
	ev := p.events()
	want := store.NewEvent{ID: id, Type: "entityCreated", Txn: "0b5a3f0e-7d0c-4c1e-9a43-2b6f0c9d7e11", Toe: 1700000001, Payload: []byte(replayEvent)}
	if len(ev) != 1 || ev[0].ID != want.ID || ev[0].Type != want.Type || ev[0].Txn != want.Txn || ev[0].Toe != want.Toe || !bytes.Equal(ev[0].Payload, want.Payload) {
		t.Fatalf("got events %+v, want [%+v]", ev, want)
	}

	for _, tc := range []struct {
		name, line string
		want       []string // the problems' names
	}{
		{"an intake event", `{"type":"entityCreated","event":` + replayEvent + `}`, []string{"line 1: type", "line 1: event",
			"line 1: iss", "line 1: iat", "line 1: jti", "line 1: aud", "line 1: toe", "line 1: events"}},
		{"not an object", `[1,2]`, []string{"line 1"}},
		{"not JSON", `{"jti":`, []string{"line 1"}},
		{"no jti", strings.Replace(string(good), `"jti":"`+id.String()+`",`, "", 1), []string{"line 1: jti"}},
		{"jti not a UUID", strings.Replace(string(good), id.String(), "e-1", 1), []string{"line 1: jti"}},
		{"toe a string", strings.Replace(string(good), `"toe":1700000001`, `"toe":"1700000001"`, 1), []string{"line 1: toe"}},
		{"aud not a list", strings.Replace(string(good), `["https://old.example/hook"]`, `"https://old.example/hook"`, 1), []string{"line 1: aud"}},
		{"two events", strings.Replace(string(good), `"events":{`, `"events":{"entityDeleted":{},`, 1), []string{"line 1: events"}},
		{"unknown type", strings.Replace(string(good), "entityCreated", "entityEaten", 1), []string{"line 1: events"}},
		{"event missing a field", strings.Replace(string(good), `"sub":"s"`, `"other":"s"`, 1), []string{"line 1: event.sub"}},
		{"jti twice", strings.Replace(string(good), `"iss":`, `"jti":"`+id.String()+`","iss":`, 1), []string{"line 1: jti"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := intakeParser{claims: true}
			err := p.parseLines([]byte(tc.line+"\n"), 0)
			if err == nil {
				err = p.refusal()
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want a problem", err)
			}
			if got := e.names(); !slices.Equal(got, tc.want) {
				t.Errorf("got problems %v (%+v), want %v", got, e.Params, tc.want)
			}
			if len(p.events()) != 0 {
				t.Errorf("got %d events, want none", len(p.events()))
			}
		})
	}
}

// replayFixture is a customer's subscription with an export job whose file
// holds lines (joined with newlines), in enc.
type replayFixture struct {
	db     *bolt.DB
	serve  func(budget time.Duration) string // a server on db; its URL
	url    string                            // a server with the default budget
	token  string
	sub    store.Subscription
	job    store.ExportJob
	events string // the path of the subscription's events
}

func newReplayFixture(t *testing.T, enc blobsink.Encoding, lines [][]byte) replayFixture {
	t.Helper()
	db, cust, token := testTenant(t)
	now := time.Now().UTC()
	// Disabled, with one failure to export; the events its replays record
	// are failures too (nothing delivers here).
	sub := store.Subscription{ID: uuid.New(), CustomerID: cust, Title: "replay", Endpoint: "https://new.example/hook", Events: []string{"entityDeleted"}, CreatedAt: now, UpdatedAt: now}
	if err := db.CreateSubscription(sub, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AddEvents([]store.NewEvent{{Type: "entityDeleted", Toe: 1, Payload: []byte(replayEvent)}}, []store.Delivery{{SubscriptionID: sub.ID}}); err != nil {
		t.Fatal(err)
	}
	bucket := memblob.OpenBucket(nil)
	t.Cleanup(func() { bucket.Close() })
	job, err := db.CreateExport(cust, sub.ID, string(enc), store.DefaultExportScope, 0)
	if err != nil {
		t.Fatal(err)
	}
	key := blobsink.Key(cust.String(), sub.ID.String(), job.ID.String(), enc)
	if _, err := db.BeginExportWrite(job.ID, key); err != nil {
		t.Fatal(err)
	}
	w, err := blobsink.NewWriter(t.Context(), bucket, key, enc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(append(bytes.Join(lines, []byte("\n")), '\n')); err != nil {
		t.Fatal(err)
	}
	info, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if job, err = db.CompleteExport(job.ID, store.ExportResult{Key: key, Size: info.Size, ETag: info.ETag, EventCount: info.Lines}); err != nil {
		t.Fatal(err)
	}
	f := replayFixture{db: db, token: token, sub: sub, job: job, events: "/" + cust.String() + "/webhooks/subscriptions/" + sub.ID.String()}
	f.serve = func(budget time.Duration) string {
		s := New(Options{DB: db, AdminToken: testAdminToken, Exports: ExportOptions{Bucket: bucket}})
		s.replayBudget = budget
		srv := httptest.NewServer(s)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	f.url = f.serve(0)
	return f
}

func (f replayFixture) replay(t *testing.T, query string, want int) (wire.ExportReplay, apiResult) {
	t.Helper()
	res := callAPI(t, http.MethodPost, f.url+f.events+"/exports/"+f.job.ID.String()+"/replay"+query, f.token, "", nil)
	if res.Status != want {
		t.Fatalf("replay%s: got %d %s, want %d", query, res.Status, res.Body, want)
	}
	var out wire.ExportReplay
	if want == http.StatusAccepted {
		if err := json.Unmarshal(res.Body, &out); err != nil {
			t.Fatal(err)
		}
	}
	return out, res
}

// TestReplayExportInBatches: a file is replayed in batches; once the time
// is spent the answer says where to continue, and continuing from there
// records the rest. The events keep their jtis and go to the
// subscription whatever its event types; a second replay records nothing.
func TestReplayExportInBatches(t *testing.T) {
	const n = 2*replayBatch + 500
	var lines [][]byte
	var ids []uuid.UUID
	for i := range n {
		ids = append(ids, uuid.New())
		lines = append(lines, exportLine(ids[i], int64(1700000000+i)))
		if i == 10 {
			lines = append(lines, nil) // a blank line is skipped
		}
	}
	f := newReplayFixture(t, blobsink.Zstd, lines)
	everyTime := f.url
	f.url = f.serve(time.Nanosecond) // one batch per request

	got, _ := f.replay(t, "", http.StatusAccepted)
	if want := (wire.ExportReplay{Lines: replayBatch, Recorded: replayBatch - 1, NextLine: replayBatch + 1}); got != want {
		t.Fatalf("first request: got %+v, want %+v", got, want)
	}
	got, _ = f.replay(t, fmt.Sprintf("?fromLine=%d", got.NextLine), http.StatusAccepted)
	if want := (wire.ExportReplay{Lines: replayBatch, Recorded: replayBatch, NextLine: 2*replayBatch + 1}); got != want {
		t.Fatalf("second request: got %+v, want %+v", got, want)
	}
	got, _ = f.replay(t, fmt.Sprintf("?fromLine=%d", got.NextLine), http.StatusAccepted)
	if want := (wire.ExportReplay{Lines: 501, Recorded: 501, Complete: true}); got != want {
		t.Fatalf("third request: got %+v, want %+v", got, want)
	}
	stored, total, err := f.db.Events(f.sub.CustomerID, f.sub.ID, store.EventQuery{Limit: n + 2})
	if err != nil {
		t.Fatal(err)
	}
	if total != n+1 {
		t.Fatalf("got %d events stored, want the exported one and %d", total, n)
	}
	for i, e := range stored[1:] {
		if e.JTI() != ids[i] || e.Toe != int64(1700000000+i) || e.Type != "entityCreated" || string(e.Payload) != replayEvent {
			t.Fatalf("event %d: got jti %s toe %d type %s payload %s, want jti %s, the line's toe, type and event", i, e.JTI(), e.Toe, e.Type, e.Payload, ids[i])
		}
	}

	f.url = everyTime
	got, _ = f.replay(t, "", http.StatusAccepted)
	if want := (wire.ExportReplay{Lines: n + 1, Duplicates: n, Complete: true}); got != want {
		t.Errorf("replay again: got %+v, want %+v", got, want)
	}
	_, res := f.replay(t, fmt.Sprintf("?fromLine=%d", n+5), http.StatusBadRequest)
	if !strings.Contains(res.Problem.Details, "past the file's end") {
		t.Errorf("fromLine past the end: got %s, want it named", res.Body)
	}
}

// TestReplayExportBadLine: a bad line stops the replay with the file's
// line number; the batches before it are recorded.
func TestReplayExportBadLine(t *testing.T) {
	var lines [][]byte
	for i := range replayBatch + 300 {
		l := exportLine(uuid.New(), 1700000000)
		if i == replayBatch+200 {
			l = []byte(`{"type":"entityCreated","event":` + replayEvent + `}`)
		}
		lines = append(lines, l)
	}
	f := newReplayFixture(t, blobsink.Gzip, lines)
	_, res := f.replay(t, "", http.StatusBadRequest)
	if got := res.Problem.names(); len(got) == 0 || got[0] != fmt.Sprintf("line %d: type", replayBatch+201) || res.Problem.Params[0].Line != replayBatch+201 {
		t.Errorf("got problems %v, want line %d named", got, replayBatch+201)
	}
	if _, total, err := f.db.Events(f.sub.CustomerID, f.sub.ID, store.EventQuery{}); err != nil || total != 1+replayBatch {
		t.Errorf("got %d events stored, %v; want the exported one and the first batch's %d", total, err, replayBatch)
	}
}

// TestReplayLinesAdmin: the operator's route records a request's lines
// for the subscription, refuses a request with a bad line whole, and skips
// jtis it replayed before.
func TestReplayLinesAdmin(t *testing.T) {
	f := newReplayFixture(t, blobsink.None, [][]byte{exportLine(uuid.New(), 1)})
	path := f.url + "/admin/customers/" + f.sub.CustomerID.String() + "/subscriptions/" + f.sub.ID.String() + "/replay"
	a, b := uuid.New(), uuid.New()
	body := string(exportLine(a, 1)) + "\n\n" + string(exportLine(b, 2)) + "\n"
	res := callAPI(t, http.MethodPost, path, testAdminToken, "application/x-ndjson", strings.NewReader(body))
	var out wire.ReplayResult
	if res.Status != http.StatusAccepted || json.Unmarshal(res.Body, &out) != nil || out.Accepted != 2 || out.Recorded != 2 || len(out.EventIDs) != 2 || len(out.Duplicates) != 0 {
		t.Fatalf("replay: got %d %s, want 202 with 2 recorded", res.Status, res.Body)
	}
	c := uuid.New()
	res = callAPI(t, http.MethodPost, path, testAdminToken, "application/x-ndjson", strings.NewReader(string(exportLine(c, 3))+"\n"+string(exportLine(a, 1))+"\n"+`{"jti":"x"}`+"\n"))
	if res.Status != http.StatusBadRequest || !slices.ContainsFunc(res.Problem.names(), func(n string) bool { return strings.HasPrefix(n, "line 3: ") }) {
		t.Fatalf("bad line: got %d %s, want 400 naming line 3", res.Status, res.Body)
	}
	res = callAPI(t, http.MethodPost, path, testAdminToken, "application/x-ndjson", strings.NewReader(string(exportLine(c, 3))+"\n"+string(exportLine(a, 1))))
	out = wire.ReplayResult{}
	if res.Status != http.StatusAccepted || json.Unmarshal(res.Body, &out) != nil || out.Recorded != 1 || !slices.Equal(out.Duplicates, []uuid.UUID{a}) {
		t.Fatalf("replay again: got %d %s, want c recorded and a a duplicate", res.Status, res.Body)
	}
	if _, total, err := f.db.Events(f.sub.CustomerID, f.sub.ID, store.EventQuery{}); err != nil || total != 1+3 {
		t.Errorf("got %d events stored, %v; want the exported one and 3", total, err)
	}
	other := "/admin/customers/" + uuid.NewString() + "/subscriptions/" + f.sub.ID.String() + "/replay"
	if res := callAPI(t, http.MethodPost, f.url+other, testAdminToken, "application/x-ndjson", strings.NewReader(body)); res.Status != http.StatusNotFound {
		t.Errorf("another customer's path: got %d %s, want 404", res.Status, res.Body)
	}
}
