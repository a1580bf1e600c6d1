package httpapi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"

	"hookd/store"
)

// TestExportJSONFailureReason: a failed job shows why it failed and never
// the operator's detail; a job that failed before reasons were kept shows
// internal-error; other states show no reason.
func TestExportJSONFailureReason(t *testing.T) {
	job := store.ExportJob{ID: uuid.New(), CustomerID: uuid.New(), SubscriptionID: uuid.New(),
		Error: "dial tcp 10.0.0.7:9000: connect: connection refused"}
	for _, tc := range []struct {
		state  store.ExportState
		reason string
		want   string
	}{
		{store.ExportFailed, store.FailureStorageUnavailable, store.FailureStorageUnavailable},
		{store.ExportFailed, "", store.FailureInternal},
		{store.ExportProcessing, "", ""},
		{store.ExportCompleted, "", ""},
	} {
		j := job
		j.State, j.FailureReason = tc.state, tc.reason
		data, err := json.Marshal(toExportJSON(j))
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatal(err)
		}
		reason, has := got["failureReason"]
		if (tc.want == "" && has) || (tc.want != "" && reason != tc.want) {
			t.Errorf("%s with reason %q: got %s, want failureReason %q", tc.state, tc.reason, data, tc.want)
		}
		if strings.Contains(string(data), "refused") {
			t.Errorf("%s: the resource %s shows the internal detail", tc.state, data)
		}
	}
}
