package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"

	"hookd/store"
)

// TestEventListOrderAndType: the event list shows each event's type, takes
// order=desc for newest first and type= for one event type, keeps both in
// its page links, and refuses other values with 400.
func TestEventListOrderAndType(t *testing.T) {
	db, cust, token := testTenant(t)
	now := time.Now().UTC()
	sub := store.Subscription{ID: uuid.New(), CustomerID: cust, Title: "list", Endpoint: "https://example.com/hook", Events: EventTypes, Enabled: true, CreatedAt: now, UpdatedAt: now}
	if err := db.CreateSubscription(sub, 0); err != nil {
		t.Fatal(err)
	}
	types := []string{"entityCreated", "entityUpdated", "entityDeleted", "entityCreated"}
	var added []store.Added
	for _, typ := range types {
		a, err := db.AddEvents([]store.NewEvent{{Type: typ, Txn: uuid.NewString(), Toe: now.Unix(), Payload: []byte(`{"sub":"s"}`)}},
			[]store.Delivery{{SubscriptionID: sub.ID}})
		if err != nil {
			t.Fatal(err)
		}
		added = append(added, a...)
	}
	srv := httptest.NewServer(New(Options{DB: db}))
	defer srv.Close()
	base := "/" + cust.String() + "/webhooks/subscriptions/" + sub.ID.String() + "/events"

	type list struct {
		Total int `json:"total"`
		Links map[string]struct {
			Href string `json:"href"`
		} `json:"_links"`
		Embedded struct {
			Events []struct {
				ID   uuid.UUID `json:"id"`
				Type string    `json:"type"`
			} `json:"events"`
		} `json:"_embedded"`
	}
	get := func(query string) (int, list) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+base+"?"+query, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var l list
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, l
	}

	tests := []struct {
		query string
		want  []int // indexes into added
	}{
		{"", []int{0, 1, 2, 3}},
		{"order=asc", []int{0, 1, 2, 3}},
		{"order=desc", []int{3, 2, 1, 0}},
		{"order=desc&type=entityCreated", []int{3, 0}},
		{"type=entityDeleted", []int{2}},
	}
	for _, tc := range tests {
		code, l := get(tc.query)
		if code != http.StatusOK {
			t.Fatalf("%s: got status %d, want 200", tc.query, code)
		}
		if l.Total != len(tc.want) || len(l.Embedded.Events) != len(tc.want) {
			t.Fatalf("%s: got total %d and %d events, want %d", tc.query, l.Total, len(l.Embedded.Events), len(tc.want))
		}
		for i, j := range tc.want {
			got := l.Embedded.Events[i]
			if got.ID != added[j].ID || got.Type != types[j] {
				t.Errorf("%s: event %d: got %s %s, want %s %s", tc.query, i, got.ID, got.Type, added[j].ID, types[j])
			}
		}
		self, err := url.Parse(l.Links["self"].Href)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := url.ParseQuery(tc.query)
		for k := range want {
			if self.Query().Get(k) != want.Get(k) {
				t.Errorf("%s: self link %q: got %s=%q, want %q", tc.query, l.Links["self"].Href, k, self.Query().Get(k), want.Get(k))
			}
		}
	}
	for _, bad := range []string{"order=newest", "type=entityMoved", "order=DESC"} {
		if code, _ := get(bad); code != http.StatusBadRequest {
			t.Errorf("%s: got status %d, want 400", bad, code)
		}
	}
}
