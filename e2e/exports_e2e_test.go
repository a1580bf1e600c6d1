package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// exportView is an export job as the API shows it.
type exportView struct {
	ID         uuid.UUID                        `json:"id"`
	CreatedAt  string                           `json:"createdAt"`
	UpdatedAt  string                           `json:"updatedAt"`
	State      string                           `json:"state"`
	EventCount *int64                           `json:"eventCount"`
	Links      map[string]struct{ Href string } `json:"_links"`
}

// sentEvent is an event as given to the intake.
type sentEvent struct {
	Type  string          `json:"type"`
	Txn   string          `json:"txn"`
	Toe   int64           `json:"toe"`
	Event json.RawMessage `json:"event"`
}

// failedEvents are events accepted for a disabled subscription, by id, in
// the order the intake recorded them, with the time span of their intake.
type failedEvents struct {
	ids         []uuid.UUID
	sent        map[uuid.UUID]sentEvent
	first, last time.Time
}

// addFailedEvents posts n events, batch lines per request, to a customer
// whose only subscriptions are disabled, and returns those recorded for sid.
func addFailedEvents(h *hookd, tn tenant, sid uuid.UUID, n, batch int, into *failedEvents) {
	h.t.Helper()
	if into.sent == nil {
		into.sent = map[uuid.UUID]sentEvent{}
		into.first = time.Now()
	}
	for done := 0; done < n; {
		m := min(batch, n-done)
		lines := make([]string, m)
		sent := make([]sentEvent, m)
		for i := range lines {
			k := len(into.ids) + done + i
			sent[i] = sentEvent{Type: "entityCreated", Txn: uuid.NewString(), Toe: 1700000000 + int64(k),
				Event: json.RawMessage(fmt.Sprintf(`{"captureApplicationId":"a","captureClientId":"c","entityType":"user","globalSub":"capture-v1://x/%d","sub":"s-%d"}`, k, k))}
			data, _ := json.Marshal(sent[i])
			lines[i] = string(data)
		}
		ids := postNDJSON(h, tn, lines...).ids(sid)
		if len(ids) != m {
			h.t.Fatalf("intake recorded %d events for the subscription, want %d", len(ids), m)
		}
		for i, id := range ids {
			into.sent[id] = sent[i]
		}
		into.ids = append(into.ids, ids...)
		done += m
	}
	into.last = time.Now()
}

// disabledSub creates a disabled subscription to entityCreated.
func disabledSub(h *hookd, tn tenant, title string) uuid.UUID {
	return addSub(h, tn, map[string]any{"title": title, "endpoint": "http://127.0.0.1:1/hook", "events": []string{"entityCreated"}, "enabled": false})
}

// startExport posts an export job at path with body and wants 202.
func startExport(h *hookd, tn tenant, path string, body any) exportView {
	h.t.Helper()
	resp, data := h.call(http.MethodPost, path, tn.Token, body)
	if resp.StatusCode != http.StatusAccepted {
		h.t.Fatalf("POST %s: got %d, want 202: %s", path, resp.StatusCode, data)
	}
	var j exportView
	if err := json.Unmarshal(data, &j); err != nil {
		h.t.Fatal(err)
	}
	if loc := resp.Header.Get("Location"); loc == "" || loc != j.Links["self"].Href {
		h.t.Errorf("got Location %q, want the job's self link %q", loc, j.Links["self"].Href)
	}
	return j
}

// waitExport polls job until its state is not processing or writing.
func waitExport(h *hookd, tn tenant, self string) exportView {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var j exportView
		h.mustCall(http.StatusOK, http.MethodGet, self, tn.Token, nil, &j)
		if j.State != "processing" && j.State != "writing" {
			return j
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("export %s is %s after 60s", j.ID, j.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// download gets a file with headers (name, value pairs) and the given
// Accept-Encoding: the bytes are as sent (Go's transparent decoding only
// applies when the request names no encoding).
func download(h *hookd, tn tenant, path string, header ...string) (*http.Response, []byte) {
	h.t.Helper()
	return h.call(http.MethodGet, path, tn.Token, nil, append([]string{"Accept-Encoding", "gzip, zstd"}, header...)...)
}

// decodeFile undoes the content encoding of a stored file.
func decodeFile(t *testing.T, encoding string, data []byte) []byte {
	t.Helper()
	var r io.Reader
	switch encoding {
	case "":
		return data
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	default:
		t.Fatalf("unexpected Content-Encoding %q", encoding)
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode %s: %v", encoding, err)
	}
	return plain
}

// checkLines checks an export file against the events it must hold, in
// order: every line is the claims object of one event as accepted.
func checkLines(t *testing.T, iss string, plain []byte, want []uuid.UUID, all failedEvents) {
	t.Helper()
	text := strings.TrimSuffix(string(plain), "\n")
	var lines []string
	if text != "" {
		lines = strings.Split(text, "\n")
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d", len(lines), len(want))
	}
	for i, line := range lines {
		var c struct {
			Iss    string                     `json:"iss"`
			Iat    int64                      `json:"iat"`
			Jti    uuid.UUID                  `json:"jti"`
			Aud    []string                   `json:"aud"`
			Txn    string                     `json:"txn"`
			Toe    int64                      `json:"toe"`
			Events map[string]json.RawMessage `json:"events"`
		}
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("line %d %q: %v", i+1, line, err)
		}
		s := all.sent[want[i]]
		switch {
		case c.Jti != want[i]:
			t.Fatalf("line %d: got jti %s, want %s", i+1, c.Jti, want[i])
		case c.Iss != iss || !reflect.DeepEqual(c.Aud, []string{"http://127.0.0.1:1/hook"}) || c.Txn != s.Txn || c.Toe != s.Toe:
			t.Fatalf("line %d: got %s, want iss %s, aud the endpoint, txn %s, toe %d", i+1, line, iss, s.Txn, s.Toe)
		case c.Iat < all.first.Unix() || c.Iat > all.last.Unix()+1:
			t.Fatalf("line %d: got iat %d, want the time of intake (%d to %d)", i+1, c.Iat, all.first.Unix(), all.last.Unix())
		case len(c.Events) != 1 || string(c.Events[s.Type]) != string(s.Event):
			t.Fatalf("line %d: got events %s, want {%q: %s}", i+1, line, s.Type, s.Event)
		}
		if !strings.HasPrefix(line, `{"iss":`) {
			t.Fatalf("line %d: got %q, want the claims object only", i+1, line)
		}
	}
}

// issuer is the iss claim of the customer's tokens.
func issuer(h *hookd, tn tenant) string { return h.URL + "/" + tn.Customer.String() + "/webhooks" }

// count is the job's event count, -1 when it shows none.
func count(j exportView) int64 {
	if j.EventCount == nil {
		return -1
	}
	return *j.EventCount
}

func etagOf(data []byte) string {
	sum := sha256.Sum256(data)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// blobTargets are the --blob-url values the export tests run against: the
// default directory, memory, and S3 when HOOKD_TEST_S3_URL is set.
func blobTargets(t *testing.T) map[string][]string {
	targets := map[string][]string{"file": nil, "mem": {"--blob-url", "mem://"}}
	if u := os.Getenv("HOOKD_TEST_S3_URL"); u != "" {
		// A prefix of its own keeps the shared test bucket apart.
		targets["s3"] = []string{"--blob-url", u + "&prefix=e2e-" + uuid.NewString() + "/"}
	} else if os.Getenv("HOOKD_REQUIRE_EXTERNAL") == "1" {
		t.Fatal("HOOKD_TEST_S3_URL is not set and HOOKD_REQUIRE_EXTERNAL=1: run the tests under .ci/with-versitygw.sh")
	}
	return targets
}

func TestExportAndDownloadOnEveryBackend(t *testing.T) {
	for name, args := range blobTargets(t) {
		t.Run(name, func(t *testing.T) {
			h := startHookd(t, "", append([]string{"--export-cooldown", "0"}, args...)...)
			tn := h.newTenant()
			sid := disabledSub(h, tn, "failing")
			var evs failedEvents
			addFailedEvents(h, tn, sid, 1500, 500, &evs)
			exports := subPath(tn, sid, "/exports")

			// Uncompressed, started through the /events/exports form.
			job := startExport(h, tn, subPath(tn, sid, "/events/exports"), nil)
			if job.State != "processing" || job.Links["self"].Href != exports+"/"+job.ID.String() || job.Links["exports"].Href != exports {
				t.Fatalf("got job %+v, want processing with links in the /exports form", job)
			}
			job = waitExport(h, tn, job.Links["self"].Href)
			if job.State != "completed" || count(job) != 1500 || job.Links["download"].Href != exports+"/"+job.ID.String()+"/download" {
				t.Fatalf("got job %+v, want completed with 1500 events and a download link", job)
			}
			for _, form := range []string{"/exports/", "/events/exports/"} {
				resp, data := download(h, tn, subPath(tn, sid, form+job.ID.String()+"/download"))
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("download %s: got %d: %s", form, resp.StatusCode, data)
				}
				hd := resp.Header
				if hd.Get("Content-Type") != "application/x-ndjson" || hd.Get("ETag") != etagOf(data) || hd.Get("Content-Encoding") != "" ||
					hd.Get("Content-Disposition") != `attachment; filename="`+job.ID.String()+`.ndjson"` || hd.Get("Accept-Ranges") != "bytes" {
					t.Errorf("download %s: got headers %v, want NDJSON with the file's ETag and name", form, hd)
				}
				checkLines(t, issuer(h, tn), data, evs.ids, evs)
			}
			if s := getSummary(h, tn, sid); s.Exportable != 0 || s.Failed != 1500 {
				t.Errorf("got summary %+v, want 1500 failed, none exportable", s)
			}

			// Compressed: gzip, then zstd, each holding only what is new.
			var enc failedEvents
			enc.sent = evs.sent
			enc.first = time.Now()
			for _, encoding := range []string{"gzip", "zstd"} {
				before := len(enc.ids)
				addFailedEvents(h, tn, sid, 300, 300, &enc)
				job := waitExport(h, tn, startExport(h, tn, exports, map[string]string{"encoding": encoding}).Links["self"].Href)
				if job.State != "completed" || count(job) != 300 {
					t.Fatalf("%s: got %+v, want completed with 300 events", encoding, job)
				}
				resp, data := download(h, tn, job.Links["download"].Href)
				suffix := map[string]string{"gzip": ".ndjson.gz", "zstd": ".ndjson.zst"}[encoding]
				if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != encoding || resp.Header.Get("ETag") != etagOf(data) ||
					!strings.Contains(resp.Header.Get("Content-Disposition"), job.ID.String()+suffix) {
					t.Fatalf("%s: got %d %v, want the stored file with its encoding", encoding, resp.StatusCode, resp.Header)
				}
				checkLines(t, issuer(h, tn), decodeFile(t, encoding, data), enc.ids[before:], enc)
			}
			// Go's client decodes gzip by itself when it asked for it.
			var list struct {
				Total    int
				Embedded struct{ Exports []exportView } `json:"_embedded"`
			}
			h.mustCall(http.StatusOK, http.MethodGet, exports, tn.Token, nil, &list)
			if list.Total != 3 || len(list.Embedded.Exports) != 3 || list.Embedded.Exports[0].ID != job.ID {
				t.Fatalf("got list %+v, want the 3 jobs, oldest first", list)
			}
			gz := list.Embedded.Exports[1]
			resp, plain := h.call(http.MethodGet, gz.Links["download"].Href, tn.Token, nil)
			if resp.StatusCode != http.StatusOK || !resp.Uncompressed {
				t.Fatalf("transparent gzip: got %d, uncompressed %v", resp.StatusCode, resp.Uncompressed)
			}
			checkLines(t, issuer(h, tn), plain, enc.ids[:300], enc)

			// Nothing left: refused, and no job is created.
			resp, data := h.call(http.MethodPost, exports, tn.Token, "")
			if resp.StatusCode != http.StatusConflict || !strings.Contains(string(data), `"Nothing to export"`) {
				t.Errorf("empty export: got %d %s, want 409 Nothing to export", resp.StatusCode, data)
			}
			h.mustCall(http.StatusOK, http.MethodGet, exports, tn.Token, nil, &list)
			if list.Total != 3 {
				t.Errorf("after the refused export: got %d jobs, want 3", list.Total)
			}
		})
	}
}

func TestExportDownloadConditionalAndRanges(t *testing.T) {
	h := startHookd(t, "")
	tn := h.newTenant()
	sid := disabledSub(h, tn, "failing")
	var evs failedEvents
	addFailedEvents(h, tn, sid, 200, 200, &evs)
	job := waitExport(h, tn, startExport(h, tn, subPath(tn, sid, "/exports"), nil).Links["self"].Href)
	dl := job.Links["download"].Href
	_, full := download(h, tn, dl)
	etag := etagOf(full)
	size := len(full)

	for _, tc := range []struct {
		name    string
		header  []string
		status  int
		body    []byte
		headers map[string]string
	}{
		{"if-none-match", []string{"If-None-Match", etag}, http.StatusNotModified, nil, map[string]string{"ETag": etag}},
		{"if-none-match list", []string{"If-None-Match", `"other", ` + etag}, http.StatusNotModified, nil, nil},
		{"if-none-match other", []string{"If-None-Match", `"other"`}, http.StatusOK, full, nil},
		{"range", []string{"Range", "bytes=10-99"}, http.StatusPartialContent, full[10:100],
			map[string]string{"Content-Range": fmt.Sprintf("bytes 10-99/%d", size), "Content-Length": "90"}},
		{"suffix range", []string{"Range", "bytes=-7"}, http.StatusPartialContent, full[size-7:], nil},
		{"open range", []string{"Range", fmt.Sprintf("bytes=%d-", size-3)}, http.StatusPartialContent, full[size-3:], nil},
		{"unsatisfiable", []string{"Range", fmt.Sprintf("bytes=%d-", size)}, http.StatusRequestedRangeNotSatisfiable, nil, nil},
		{"if-range match", []string{"Range", "bytes=0-4", "If-Range", etag}, http.StatusPartialContent, full[:5], nil},
		{"if-range changed", []string{"Range", "bytes=0-4", "If-Range", `"old"`}, http.StatusOK, full, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := download(h, tn, dl, tc.header...)
			if resp.StatusCode != tc.status {
				t.Fatalf("got %d, want %d: %s", resp.StatusCode, tc.status, data)
			}
			if tc.body != nil && !bytes.Equal(data, tc.body) {
				t.Errorf("got %d bytes, want %d", len(data), len(tc.body))
			}
			if tc.status == http.StatusNotModified && len(data) != 0 {
				t.Errorf("got a body of %d bytes with 304", len(data))
			}
			for k, v := range tc.headers {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("got %s %q, want %q", k, got, v)
				}
			}
		})
	}
	// Any number of downloads, and HEAD.
	for range 3 {
		if _, data := download(h, tn, dl); !bytes.Equal(data, full) {
			t.Fatal("a repeated download differs")
		}
	}
	resp, _ := h.call(http.MethodHead, dl, tn.Token, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Length") != fmt.Sprint(size) {
		t.Errorf("HEAD: got %d with Content-Length %q, want 200 and %d", resp.StatusCode, resp.Header.Get("Content-Length"), size)
	}
}

func TestExportRulesAndErrors(t *testing.T) {
	h := startHookd(t, "")
	tn := h.newTenant()
	sid := disabledSub(h, tn, "failing")
	other := disabledSub(h, tn, "other")
	var evs failedEvents
	addFailedEvents(h, tn, sid, 30000, 2000, &evs)
	exports := subPath(tn, sid, "/exports")
	problem := func(resp *http.Response, data []byte, status int, details string) {
		t.Helper()
		var p struct {
			Status  int
			Details string
			Params  []struct{ Name, Reason string } `json:"invalid-body-params"`
		}
		_ = json.Unmarshal(data, &p)
		if resp.StatusCode != status || p.Status != status || !strings.Contains(p.Details, details) {
			t.Errorf("got %d %s, want %d with details containing %q", resp.StatusCode, data, status, details)
		}
	}

	// Bodies.
	for _, body := range []any{map[string]string{"encoding": "brotli"}, map[string]int{"encoding": 1}, map[string]string{"format": "csv"}} {
		resp, data := h.call(http.MethodPost, exports, tn.Token, body)
		problem(resp, data, http.StatusBadRequest, "")
		if !strings.Contains(string(data), "invalid-body-params") {
			t.Errorf("body %v: got %s, want invalid-body-params", body, data)
		}
	}
	resp, data := h.call(http.MethodPost, exports, tn.Token, "not json")
	problem(resp, data, http.StatusBadRequest, "")

	// Unknown ids and subscriptions.
	unknown := uuid.NewString()
	for _, p := range []string{"/exports/" + unknown, "/events/exports/" + unknown, "/exports/" + unknown + "/download", "/exports/not-a-uuid"} {
		resp, data := h.call(http.MethodGet, subPath(tn, sid, p), tn.Token, nil)
		problem(resp, data, http.StatusNotFound, "")
	}
	resp, data = h.call(http.MethodPost, subPath(tn, uuid.New(), "/exports"), tn.Token, nil)
	problem(resp, data, http.StatusNotFound, "")

	// One job at a time per customer (the default scope) while the first
	// writes its 30,000 lines; a cooldown after completion.
	job := startExport(h, tn, exports, nil)
	resp, data = h.call(http.MethodPost, subPath(tn, other, "/exports"), tn.Token, nil)
	problem(resp, data, http.StatusConflict, "Too many active exports")
	job = waitExport(h, tn, job.Links["self"].Href)
	if job.State != "completed" {
		t.Fatalf("got %+v, want completed", job)
	}
	// Nothing left to export: 409, no job and no cooldown of its own.
	resp, data = h.call(http.MethodPost, exports, tn.Token, nil)
	problem(resp, data, http.StatusConflict, "Nothing to export")
	// A new failure can be exported, after the cooldown of the completed job.
	addFailedEvents(h, tn, sid, 1, 1, &evs)
	resp, data = h.call(http.MethodPost, exports, tn.Token, nil)
	problem(resp, data, http.StatusConflict, "completed an export")
	// A subscription that never failed an event exports nothing and gets
	// no job.
	empty := addSub(h, tn, map[string]any{"title": "empty", "endpoint": "http://127.0.0.1:1/hook", "events": []string{"entityDeleted"}, "enabled": false})
	resp, data = h.call(http.MethodPost, subPath(tn, empty, "/exports"), tn.Token, nil)
	problem(resp, data, http.StatusConflict, "Nothing to export")
	var list struct{ Total int }
	h.mustCall(http.StatusOK, http.MethodGet, subPath(tn, empty, "/exports"), tn.Token, nil, &list)
	if list.Total != 0 {
		t.Errorf("after a refused empty export: got %d jobs, want none", list.Total)
	}
	// The job belongs to its subscription only.
	resp, data = h.call(http.MethodGet, subPath(tn, other, "/exports/"+job.ID.String()), tn.Token, nil)
	problem(resp, data, http.StatusNotFound, "")
	// A completed job cannot be canceled.
	resp, data = h.call(http.MethodDelete, job.Links["self"].Href, tn.Token, nil)
	problem(resp, data, http.StatusConflict, "")
	// Another customer sees nothing.
	stranger := h.newTenant()
	resp, _ = h.call(http.MethodGet, job.Links["self"].Href, stranger.Token, nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("another customer's token: got %d, want 403", resp.StatusCode)
	}
}

func TestExportCancel(t *testing.T) {
	h := startHookd(t, "", "--export-scope", "subscription", "--export-cooldown", "0")
	// Two customers, so that each one's events go to its subscription only.
	tn, tn2 := h.newTenant(), h.newTenant()
	big := disabledSub(h, tn, "big")
	small := disabledSub(h, tn2, "small")
	var bigEvs, smallEvs failedEvents
	addFailedEvents(h, tn, big, 60000, 2000, &bigEvs)
	addFailedEvents(h, tn2, small, 10, 10, &smallEvs)

	// The big job keeps the only export worker busy, so the small one
	// waits in processing until it is canceled.
	first := startExport(h, tn, subPath(tn, big, "/exports"), nil)
	queued := startExport(h, tn2, subPath(tn2, small, "/events/exports"), nil)
	var canceled exportView
	h.mustCall(http.StatusOK, http.MethodDelete, subPath(tn2, small, "/events/exports/"+queued.ID.String()), tn2.Token, nil, &canceled)
	if canceled.State != "canceled" || canceled.ID != queued.ID {
		t.Fatalf("got %+v, want the job canceled", canceled)
	}
	resp, _ := h.call(http.MethodDelete, queued.Links["self"].Href, tn2.Token, nil)
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("a second cancel: got %d, want 409", resp.StatusCode)
	}
	// Once the big job is past processing it cannot be canceled.
	for {
		var j exportView
		h.mustCall(http.StatusOK, http.MethodGet, first.Links["self"].Href, tn.Token, nil, &j)
		if j.State != "processing" {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	resp, data := h.call(http.MethodDelete, first.Links["self"].Href, tn.Token, nil)
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("cancel after writing began: got %d %s, want 409", resp.StatusCode, data)
	}
	if j := waitExport(h, tn, first.Links["self"].Href); j.State != "completed" || count(j) != 60000 {
		t.Errorf("got %s with %d events, want completed with 60000", j.State, count(j))
	}
	// The canceled job changed nothing and has no file.
	resp, _ = download(h, tn2, queued.Links["self"].Href+"/download")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("download of a canceled job: got %d, want 404", resp.StatusCode)
	}
	if s := getSummary(h, tn2, small); s.Exportable != 10 {
		t.Errorf("got %d exportable after the cancel, want 10", s.Exportable)
	}
	next := waitExport(h, tn2, startExport(h, tn2, subPath(tn2, small, "/exports"), nil).Links["self"].Href)
	if next.State != "completed" || count(next) != 10 {
		t.Errorf("export after the cancel: got %s with %d events, want completed with 10", next.State, count(next))
	}
	// The list holds both jobs of the small subscription.
	var list struct{ Total int }
	h.mustCall(http.StatusOK, http.MethodGet, subPath(tn2, small, "/events/exports"), tn2.Token, nil, &list)
	if list.Total != 2 {
		t.Errorf("got %d jobs, want 2", list.Total)
	}
}
