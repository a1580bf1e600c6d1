package jobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hookd/store/bolt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/rs/zerolog"
	"gocloud.dev/blob"

	"hookd/blobsink"
	"hookd/store"
)

const testPublicURL = "https://hooks.example.com"

// clock is a settable clock for the store.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openStore opens a store with a clock at the real time, checked at cleanup.
func openStore(t testing.TB) (*bolt.DB, *clock) {
	t.Helper()
	clk := &clock{t: time.Now().UTC()}
	db, err := bolt.Open(t.TempDir(), bolt.Options{NoSync: true, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Check(); err != nil {
			t.Errorf("consistency check: %v", err)
		}
		db.Close()
	})
	return db, clk
}

// backend is one bucket under test.
type backend struct {
	name   string
	bucket *blob.Bucket
	url    string
}

// forEachBackend runs fn against memblob, fileblob and, when
// HOOKD_TEST_S3_URL is set, the S3 server it names.
func forEachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	t.Helper()
	s3 := os.Getenv("HOOKD_TEST_S3_URL")
	if s3 != "" {
		// A prefix of its own: the bucket is shared with other tests, and
		// the janitor's orphan sweep lists all of its bucket.
		s3 += "&prefix=jobs-test-" + uuid.NewString() + "/"
	}
	urls := []struct{ name, url string }{
		{"mem", "mem://"},
		{"file", "file://" + filepath.ToSlash(filepath.Join(t.TempDir(), "exports"))},
		{"s3", s3},
	}
	for _, u := range urls {
		t.Run(u.name, func(t *testing.T) {
			if u.url == "" {
				if os.Getenv("HOOKD_REQUIRE_EXTERNAL") == "1" {
					t.Fatal("HOOKD_TEST_S3_URL is not set and HOOKD_REQUIRE_EXTERNAL=1: run the tests under .ci/with-versitygw.sh")
				}
				t.Skip("HOOKD_TEST_S3_URL is not set: no S3 server (run under .ci/with-versitygw.sh)")
			}
			b, err := blobsink.Open(t.Context(), u.url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			fn(t, backend{u.name, b, u.url})
		})
	}
}

// newSub creates a disabled subscription of a new customer.
func newSub(t testing.TB, db store.Store, enabled bool) store.Subscription {
	t.Helper()
	now := db.Now()
	s := store.Subscription{ID: uuid.New(), CustomerID: uuid.New(), Title: "sub " + uuid.NewString()[:8],
		Endpoint: "https://listener.example.com/hook?a=1", Events: []string{"entityCreated", "entityUpdated"},
		Enabled: enabled, CreatedAt: now, UpdatedAt: now}
	if err := db.CreateSubscription(s, 0); err != nil {
		t.Fatal(err)
	}
	return s
}

// addFailed records n failed events for the disabled subscription s.
func addFailed(t testing.TB, db store.Store, s store.Subscription, n int) []uuid.UUID {
	t.Helper()
	var ids []uuid.UUID
	for len(ids) < n {
		m := min(n-len(ids), 10000)
		events := make([]store.NewEvent, m)
		deliveries := make([]store.Delivery, m)
		for i := range events {
			k := len(ids) + i
			typ := "entityCreated"
			if k%3 == 0 {
				typ = "entityUpdated"
			}
			txn := uuid.NewString()
			if k%5 == 0 {
				txn = "" // txn is optional
			}
			events[i] = store.NewEvent{Type: typ, Txn: txn, Toe: 1700000000 + int64(k),
				Payload: fmt.Appendf(nil, `{"captureApplicationId":"app","captureClientId":"client","entityType":"user","globalSub":"capture-v1://x/%d","sub":"s-%d\u2028\"q\""}`, k, k)}
			deliveries[i] = store.Delivery{SubscriptionID: s.ID, Event: i}
		}
		added, err := db.AddEvents(events, deliveries)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range added {
			ids = append(ids, a.ID)
		}
	}
	return ids
}

// addSignedFailure records one event for the enabled subscription s and
// fails it with a token whose payload is claims.
func addSignedFailure(t *testing.T, db *bolt.DB, s store.Subscription, claims string) uuid.UUID {
	t.Helper()
	added, err := db.AddEvents([]store.NewEvent{{Type: "entityCreated", Payload: []byte(`{"sub":"signed"}`)}}, []store.Delivery{{SubscriptionID: s.ID}})
	if err != nil {
		t.Fatal(err)
	}
	jws := "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(claims)) + ".c2ln"
	err = db.RecordAttempts([]store.AttemptResult{{SubscriptionID: s.ID, Seq: store.EventSeq(added[0].ID),
		StartedAt: db.Now(), JWS: jws, Outcome: store.Failed, StatusCode: 400}})
	if err != nil {
		t.Fatal(err)
	}
	return added[0].ID
}

func newTestExporter(db *bolt.DB, b *blob.Bucket) *Exporter {
	return NewExporter(ExporterOptions{DB: db, Bucket: b, Log: zerolog.Nop(), PublicURL: testPublicURL, Retention: 7 * 24 * time.Hour})
}

// readFile returns the stored bytes of key and their decoded content.
func readFile(t *testing.T, b *blob.Bucket, key string, enc blobsink.Encoding) (stored, plain []byte) {
	t.Helper()
	stored, err := b.ReadAll(t.Context(), key)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	var r io.Reader
	switch enc {
	case blobsink.Gzip:
		zr, err := gzip.NewReader(bytes.NewReader(stored))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case blobsink.Zstd:
		zr, err := zstd.NewReader(bytes.NewReader(stored))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	default:
		return stored, stored
	}
	plain, err = io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode %s: %v", key, err)
	}
	return stored, plain
}

// wantLine is the claims object an export line must decode to.
func wantLine(t *testing.T, db *bolt.DB, s store.Subscription, id uuid.UUID) map[string]any {
	t.Helper()
	e, err := db.Event(s.CustomerID, s.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{
		"iss": testPublicURL + "/" + s.CustomerID.String() + "/webhooks",
		"iat": e.CreatedAt.Unix(), "jti": id.String(), "aud": []string{e.Endpoint}, "toe": e.Toe,
		"events": map[string]json.RawMessage{e.Type: e.Payload},
	}
	if e.Txn != "" {
		m["txn"] = e.Txn
	}
	return roundTrip(t, m)
}

func roundTrip(t *testing.T, v any) map[string]any {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestExporterWritesTheFile(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		for _, enc := range []blobsink.Encoding{blobsink.None, blobsink.Gzip, blobsink.Zstd} {
			t.Run(enc.String(), func(t *testing.T) {
				db, _ := openStore(t)
				s := newSub(t, db, true)
				signedClaims := `{"iss":"https://old.example.com/x/webhooks","iat":1,"jti":"j","aud":["a"],"toe":2,"events":{"entityCreated":{"sub":"signed"}}}`
				addSignedFailure(t, db, s, signedClaims)
				if _, _, err := db.UpdateSubscription(s.CustomerID, s.ID, func(s *store.Subscription) error { s.Enabled = false; return nil }); err != nil {
					t.Fatal(err)
				}
				ids := addFailed(t, db, s, 2500)
				job, err := db.CreateExport(s.CustomerID, s.ID, string(enc), store.ScopeCustomer, 0)
				if err != nil {
					t.Fatal(err)
				}
				ex := newTestExporter(db, be.bucket)
				if n, err := ex.RunOnce(t.Context()); err != nil || n != 1 {
					t.Fatalf("RunOnce: got %d, %v; want 1 job", n, err)
				}
				job, err = db.Export(s.CustomerID, s.ID, job.ID)
				if err != nil {
					t.Fatal(err)
				}
				wantKey := s.CustomerID.String() + "/" + s.ID.String() + "/" + job.ID.String() + enc.Suffix()
				if job.State != store.ExportCompleted || job.EventCount != int64(len(ids)+1) || job.Key != wantKey {
					t.Fatalf("got job %+v, want completed with %d events at %s", job, len(ids)+1, wantKey)
				}
				stored, plain := readFile(t, be.bucket, job.Key, enc)
				sum := sha256.Sum256(stored)
				if want := `"` + hex.EncodeToString(sum[:]) + `"`; job.ETag != want || job.Size != int64(len(stored)) {
					t.Errorf("got ETag %s size %d, want %s and %d", job.ETag, job.Size, want, len(stored))
				}
				lines := strings.Split(strings.TrimSuffix(string(plain), "\n"), "\n")
				if len(lines) != len(ids)+1 {
					t.Fatalf("got %d lines, want %d", len(lines), len(ids)+1)
				}
				if lines[0] != signedClaims {
					t.Errorf("signed event: got line %s, want the token's claims %s", lines[0], signedClaims)
				}
				for i, id := range ids {
					var got map[string]any
					if err := json.Unmarshal([]byte(lines[i+1]), &got); err != nil {
						t.Fatalf("line %d: %v", i+1, err)
					}
					if want := wantLine(t, db, s, id); !reflect.DeepEqual(got, want) {
						t.Fatalf("line %d: got %v, want %v", i+1, got, want)
					}
				}
				if sum, _ := db.Summary(s.CustomerID, s.ID); sum.Exportable != 0 {
					t.Errorf("got %d exportable after the export, want 0", sum.Exportable)
				}
			})
		}
	})
}

func TestExporterSkipsCanceledAndDeleted(t *testing.T) {
	db, _ := openStore(t)
	b, err := blobsink.Open(t.Context(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	canceled := newSub(t, db, false)
	addFailed(t, db, canceled, 10)
	j1, err := db.CreateExport(canceled.CustomerID, canceled.ID, "", store.ScopeSubscription, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CancelExport(canceled.CustomerID, canceled.ID, j1.ID); err != nil {
		t.Fatal(err)
	}
	deleted := newSub(t, db, false)
	addFailed(t, db, deleted, 10)
	j2, err := db.CreateExport(deleted.CustomerID, deleted.ID, "", store.ScopeSubscription, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteSubscription(deleted.CustomerID, deleted.ID); err != nil {
		t.Fatal(err)
	}
	ex := newTestExporter(db, b)
	if n, err := ex.RunOnce(t.Context()); err != nil || n != 0 {
		t.Fatalf("RunOnce: got %d, %v; want 0", n, err)
	}
	if j, _ := db.ExportByID(j2.ID); j.State != store.ExportFailed {
		t.Errorf("job of a deleted subscription: got %s, want failed", j.State)
	}
	assertNoFiles(t, b)
	if sum, _ := db.Summary(canceled.CustomerID, canceled.ID); sum.Exportable != 10 {
		t.Errorf("got %d exportable, want 10", sum.Exportable)
	}
}

func assertNoFiles(t *testing.T, b *blob.Bucket) {
	t.Helper()
	var keys []string
	if err := blobsink.ListPrefix(t.Context(), b, "", func(key string, _ time.Time, _ int64) error {
		keys = append(keys, key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Errorf("got files %v, want none", keys)
	}
}

func TestExporterAbandonsOnShutdown(t *testing.T) {
	db, _ := openStore(t)
	dir := t.TempDir()
	b, err := blobsink.Open(t.Context(), "file://"+filepath.ToSlash(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := newSub(t, db, false)
	addFailed(t, db, s, 100)
	job, err := db.CreateExport(s.CustomerID, s.ID, "zstd", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	ex := newTestExporter(db, b)
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // as Close does while the job writes
	if got := ex.run(ctx, job); got != store.ExportProcessing {
		t.Fatalf("got state %q, want processing", got)
	}
	j, _ := db.ExportByID(job.ID)
	if j.State != store.ExportProcessing || j.Attempts != 1 {
		t.Errorf("got job %+v, want processing after one attempt", j)
	}
	assertNoFiles(t, b)
	if n, err := ex.RunOnce(t.Context()); err != nil || n != 1 {
		t.Fatalf("RunOnce: got %d, %v; want 1", n, err)
	}
}

func TestExporterRecover(t *testing.T) {
	db, _ := openStore(t)
	b, err := blobsink.Open(t.Context(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := newSub(t, db, false)
	ids := addFailed(t, db, s, 50)
	job, err := db.CreateExport(s.CustomerID, s.ID, "gzip", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A crash after the commit of the file and before CompleteExport.
	key := blobsink.Key(s.CustomerID.String(), s.ID.String(), job.ID.String(), blobsink.Gzip)
	if _, err := db.BeginExportWrite(job.ID, key); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteAll(t.Context(), key, []byte("half"), nil); err != nil {
		t.Fatal(err)
	}
	ex := newTestExporter(db, b)
	if n, err := ex.Recover(t.Context()); err != nil || n != 1 {
		t.Fatalf("Recover: got %d, %v; want 1", n, err)
	}
	if ok, _ := b.Exists(t.Context(), key); ok {
		t.Error("the file of the interrupted write is still there")
	}
	if j, _ := db.ExportByID(job.ID); j.State != store.ExportProcessing {
		t.Fatalf("got %s, want processing", j.State)
	}
	// Start runs it again.
	ex.Start(t.Context())
	defer ex.Close()
	ex.Enqueue()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, _ := db.ExportByID(job.ID)
		if j.State == store.ExportCompleted {
			if j.EventCount != int64(len(ids)) {
				t.Errorf("got %d events, want %d", j.EventCount, len(ids))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job is %s after 10s, want completed", j.State)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A job interrupted too often fails.
	addFailed(t, db, s, 5)
	job2, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	ex.Close()
	for i := range DefaultExportMaxAttempts {
		if _, err := db.BeginExportWrite(job2.ID, "k"); err != nil {
			t.Fatal(err)
		}
		if i < DefaultExportMaxAttempts-1 {
			if _, err := db.ResumeExport(job2.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := newTestExporter(db, b).Recover(t.Context()); err != nil {
		t.Fatal(err)
	}
	if j, _ := db.ExportByID(job2.ID); j.State != store.ExportFailed {
		t.Errorf("got %s, want failed", j.State)
	}
	if sum, _ := db.Summary(s.CustomerID, s.ID); sum.Exportable != 5 {
		t.Errorf("got %d exportable, want 5", sum.Exportable)
	}
}

func TestExportRetentionWindow(t *testing.T) {
	db, clk := openStore(t)
	b, err := blobsink.Open(t.Context(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := newSub(t, db, false)
	addFailed(t, db, s, 3)
	clk.add(8 * 24 * time.Hour)
	recent := addFailed(t, db, s, 2)
	job, err := db.CreateExport(s.CustomerID, s.ID, "", store.ScopeCustomer, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newTestExporter(db, b).RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	job, _ = db.ExportByID(job.ID)
	_, plain := readFile(t, b, job.Key, blobsink.None)
	if job.EventCount != 2 || !bytes.Contains(plain, []byte(recent[1].String())) {
		t.Errorf("got %d events, want only the 2 that failed within the retention window", job.EventCount)
	}
}

func TestTokenPayload(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"a.b.c", "b", true},
		{"a..c", "", true},
		{"abc", "", false},
		{"a.b", "", false},
		{"", "", false},
	} {
		got, ok := tokenPayload([]byte(tc.in))
		if string(got) != tc.want || ok != tc.ok {
			t.Errorf("tokenPayload(%q): got %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
