package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestIntakeMemoryBound: while one intake request holds the intake's
// memory budget, the next is 503 with Retry-After and stores nothing; it
// succeeds once the first has completed. A request larger than the whole
// budget passes alone, and one over the body limit is 413 before its body
// is read.
func TestIntakeMemoryBound(t *testing.T) {
	db, cust, _ := testTenant(t)
	sub := intakeTarget(t, db, cust)
	first := testEvent("u-1") + "\n" + testEvent("u-2") + "\n"
	// Less than the first request's estimate: it takes the whole budget.
	budget := int64(len(first))
	s, url := testAPI(t, db, Options{IntakeMemory: budget, MaxIntakeBody: 1 << 20})
	reserved := make(chan int64, 4)
	s.intakeMem.reserved = func(weight int64) { reserved <- weight }
	intake := url + "/" + cust.String() + "/webhooks/events"

	// The first request's body stays open until the test writes it.
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, intake, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(first))
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	req.Header.Set("Content-Type", mediaNDJSON)
	firstDone := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			firstDone <- 0
			return
		}
		resp.Body.Close()
		firstDone <- resp.StatusCode
	}()
	if w := <-reserved; w != budget {
		t.Fatalf("first request reserved %d bytes, want the whole budget %d", w, budget)
	}

	second := func() apiResult {
		return callAPI(t, http.MethodPost, intake, testAdminToken, mediaJSON, strings.NewReader(testEvent("u-3")))
	}
	res := second()
	if res.Status != http.StatusServiceUnavailable || res.Problem.Type != "/intake-busy" || res.Header.Get("Retry-After") != intakeRetryAfter {
		t.Fatalf("second request while the first holds the budget: got %d %s (Retry-After %q), want 503 /intake-busy with Retry-After %s",
			res.Status, res.Body, res.Header.Get("Retry-After"), intakeRetryAfter)
	}
	if n := storedEvents(t, db, cust, sub); n != 0 {
		t.Fatalf("got %d events stored while the first request is open and the second refused, want none", n)
	}

	if _, err := io.WriteString(pw, first); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if got := <-firstDone; got != http.StatusAccepted {
		t.Fatalf("first request: got %d, want 202", got)
	}
	res = second()
	var out intakeResponse
	if res.Status != http.StatusAccepted || json.Unmarshal(res.Body, &out) != nil || out.Recorded != 1 {
		t.Fatalf("second request after the first completed: got %d %s, want 202 with 1 recorded", res.Status, res.Body)
	}
	if n := storedEvents(t, db, cust, sub); n != 3 {
		t.Errorf("got %d events stored, want 3", n)
	}

	if w, want := <-reserved, int64(intakeMemoryPerByte*len(testEvent("u-3"))); w != want && w != budget {
		t.Errorf("second request reserved %d bytes, want %d for its body (or the whole budget)", w, want)
	}

	res = callAPI(t, http.MethodPost, intake, testAdminToken, mediaNDJSON, strings.NewReader(strings.Repeat(testEvent("big")+"\n", (1<<20)/len(testEvent("big"))+1)))
	if res.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("body over the limit: got %d %s, want 413", res.Status, res.Body)
	}
	select {
	case w := <-reserved:
		t.Errorf("a body over the limit reserved %d bytes, want it refused before", w)
	default:
	}
}
