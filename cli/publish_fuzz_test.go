package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
)

// FuzzPublishRead splits fuzzed NDJSON the way hookd publish does: every
// non-blank line up to the first one that is not a JSON object is sent, in
// order, in batches of at most the batch size with their line numbers; that
// line stops the command with its number; a file read to its end is sent
// whole. Its seed corpus is in testdata/fuzz/FuzzPublishRead/.
func FuzzPublishRead(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, size uint8) {
		batch := int(size%16) + 1
		p := &publisher{name: "in.ndjson", idSpace: uuid.NewSHA1(publishIDSpace, []byte("in.ndjson"))}
		queue := make(chan publishBatch)
		var got []publishBatch
		done := make(chan struct{})
		go func() {
			for b := range queue {
				got = append(got, b)
			}
			close(done)
		}()
		var stop atomic.Bool
		lerr := p.read(context.Background(), bytes.NewReader(data), batch, queue, &stop)
		close(queue)
		<-done

		// The same split, written plainly.
		var want [][]byte
		var wantNums []int
		bad := 0
		for i, l := range bytes.Split(data, []byte("\n")) {
			l = bytes.TrimSpace(l)
			if len(l) == 0 {
				continue
			}
			if l[0] != '{' || !json.Valid(l) {
				bad = i + 1
				break
			}
			// Each line goes with an id: its own, or one derived from it.
			want, wantNums = append(want, p.withID(l, i+1)), append(wantNums, i+1)
		}
		if bad > 0 {
			if lerr == nil || lerr.line != bad || !strings.Contains(lerr.Error(), "not a JSON object") {
				t.Fatalf("got error %v, want line %d not a JSON object", lerr, bad)
			}
			// Only full batches before the bad line were sent.
			n := len(want) / batch * batch
			want, wantNums = want[:n], wantNums[:n]
		} else if lerr != nil {
			t.Fatalf("got error %v, want none", lerr)
		}

		var sent [][]byte
		var nums []int
		for _, b := range got {
			if len(b.lines) < 1 || len(b.lines) > batch {
				t.Fatalf("got a batch of %d lines, want 1 to %d", len(b.lines), batch)
			}
			lines := bytes.Split(bytes.TrimSuffix(b.body, []byte("\n")), []byte("\n"))
			if len(lines) != len(b.lines) || !bytes.HasSuffix(b.body, []byte("\n")) {
				t.Fatalf("got a body of %d lines for %d line numbers: %q", len(lines), len(b.lines), b.body)
			}
			sent, nums = append(sent, lines...), append(nums, b.lines...)
		}
		if !slices.EqualFunc(sent, want, bytes.Equal) || !slices.Equal(nums, wantNums) {
			t.Fatalf("got lines %q at %v, want %q at %v", sent, nums, want, wantNums)
		}

		// The progress total counts at least every line sent (it counts a
		// line of other white space, such as \v, as not blank).
		total, err := countLines(bytes.NewReader(data))
		if err != nil || (bad == 0 && total < int64(len(sent))) {
			t.Fatalf("got countLines %d (%v) for %d lines sent, want at least as many", total, err, len(sent))
		}
	})
}
