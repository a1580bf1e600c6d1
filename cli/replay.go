package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"hookd/envflag"
	"hookd/wire"
)

// Defaults of hookd replay. Requests are sequential by default: the events
// go to one subscription, whose delivery they should not outrun.
const (
	defaultReplayBatch       = 1000
	defaultReplayConcurrency = 1
	// replayZstdWindow bounds the memory a zstd file can make the reader
	// take (hookd writes a 1 MiB window; other tools default to 8 MiB).
	replayZstdWindow = 64 << 20
)

const replayUsage = `Usage: hookd replay --customer <uuid> --subscription <uuid> [flags] FILE.ndjson[.gz|.zst]

Sends the events of an export file (GET .../exports/{exportId}/download, or
hookd export download) to a subscription of a running hookd, through
POST /admin/customers/{customerId}/subscriptions/{subscriptionId}/replay
(application/x-ndjson, admin token). Each line is the claims of an exported
event's Security Event Token; hookd records it again with the same jti and
delivers it to the subscription's endpoint as it is now, signed with the
customer's current key. The subscription's event types and filter do not
apply: the file is the selection. A gzip or zstd file (told by its first
bytes) is decompressed.

A line that is not a SET claims object ({"iss","iat","jti","aud","toe",
"events":{"<type>":{...}}}, txn optional) stops the command with its line
number; the batches before it are recorded. hookd records a jti once per
subscription for replays (within the events' retention, 7 days by default):
running the command again, whole or --from-line N, records only what was
not recorded, and the summary counts the rest as already replayed.
Answers 5xx, 429 and connection errors are retried 4 times with backoff.

Example:
  hookd replay --customer 9bc867ed-1f10-420f-8d90-398fde4e4779 \
    --subscription 0f9b1a5e-2c3d-4e5f-8a9b-0c1d2e3f4a5b failed.ndjson.zst
`

func runReplay(ctx context.Context, ua string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var a adminFlags
	var customer, subscription string
	batch, concurrency, fromLine := defaultReplayBatch, defaultReplayConcurrency, 1
	f := envflag.New("replay", stderr, replayUsage)
	a.register(f)
	f.String(&customer, "customer", "", "customer id (a UUID)")
	f.String(&subscription, "subscription", "", "subscription id (a UUID) of the customer that gets the events")
	f.Int(&batch, "batch", defaultReplayBatch, "lines per request")
	f.Int(&concurrency, "concurrency", defaultReplayConcurrency, "requests in flight at once")
	f.Int(&fromLine, "from-line", 1, "skip FILE's lines before this one (numbered from 1), to resume a run that stopped")
	files, err := f.ParseInterspersed(args, getenv)
	if err != nil {
		if envflag.IsHelp(err) {
			return nil
		}
		return fmt.Errorf("%w: %v", envflag.ErrUsage, err)
	}
	cid, err := uuid.Parse(customer)
	if err != nil {
		return usageErr(stderr, "replay", "--customer must be a UUID")
	}
	sid, err := uuid.Parse(subscription)
	if err != nil {
		return usageErr(stderr, "replay", "--subscription must be a UUID")
	}
	if len(files) != 1 {
		return usageErr(stderr, "replay", "give one FILE, got %d arguments", len(files))
	}
	if batch < 1 || batch > wire.MaxIntakeEvents || concurrency < 1 || fromLine < 1 {
		return usageErr(stderr, "replay", "--batch must be 1 to %d, --concurrency and --from-line at least 1", wire.MaxIntakeEvents)
	}
	c, err := a.client(ua)
	if err != nil {
		return err
	}
	name := files[0]
	total, err := withExportFile(name, func(r io.Reader) (int64, error) { return countLinesFrom(r, fromLine) })
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	p := &publisher{
		client: c, http: streamClient(), path: "/admin/customers/" + cid.String() + "/subscriptions/" + sid.String() + "/replay", name: name,
		retries: publishRetries, backoff: publishBackoff, prog: newProgress(stderr, "replay", total, false),
		fromLine: fromLine, cmd: "replay", target: "hookd", check: claimsProblem,
	}
	start := time.Now()
	_, err = withExportFile(name, func(r io.Reader) (int64, error) { return 0, p.run(ctx, r, batch, concurrency) })
	p.prog.finish()
	verb := "replayed"
	if err != nil {
		verb = "stopped replaying"
	}
	fmt.Fprintf(stdout, "%s %s to subscription %s: %d lines in %d requests in %s; %d events recorded for delivery; %d were replayed before and skipped\n",
		verb, name, sid, p.sent.Load(), p.requests.Load(), time.Since(start).Round(time.Millisecond), p.deliveries.Load(), p.duplicates.Load())
	return err
}

// withExportFile opens the file name, decompressed when it is gzip or
// zstd (told by its first bytes), gives it to fn and returns what fn
// returns.
func withExportFile(name string, fn func(io.Reader) (int64, error)) (int64, error) {
	fh, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	br := bufio.NewReaderSize(fh, 1<<20)
	magic, _ := br.Peek(4)
	var r io.Reader = br
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		defer zr.Close()
		r = zr
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(replayZstdWindow))
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		defer zr.Close()
		r = zr
	}
	return fn(r)
}

// claimsProblem says what keeps a line (a JSON object) from being the
// claims of a Security Event Token as hookd exports them: "" when nothing
// does. hookd checks the rest (the event object, the UUIDs).
func claimsProblem(line []byte) string {
	var c struct {
		Jti    *string                    `json:"jti"`
		Toe    *json.Number               `json:"toe"`
		Events map[string]json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(line, &c); err != nil || c.Jti == nil || c.Toe == nil || len(c.Events) != 1 {
		return "not a SET claims object (an export line with jti, toe and events of one event type)"
	}
	return ""
}
