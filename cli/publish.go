package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"hookd/envflag"
	"hookd/wire"
)

// Limits and defaults of hookd publish.
const (
	defaultPublishBatch       = 1000
	defaultPublishConcurrency = 2
	publishMaxBatchBytes      = 16 << 20 // well under the intake's 64 MiB body limit
	publishMaxLine            = 8 << 20
	publishRetries            = 4
	publishBackoff            = 500 * time.Millisecond
	publishMaxBackoff         = 10 * time.Second
)

// publishIDSpace is the UUIDv5 namespace of the ids publish gives events
// that have none: each is the UUIDv5 of FILE's base name in it, then of
// the line's number and content in that, so that sending the same file
// again gives the same ids and the intake stores nothing twice.
var publishIDSpace = uuid.MustParse("5d1a0f5e-8f7b-4c1e-9a43-2b6f0c9d7e11")

const publishUsage = `Usage: hookd publish --customer <uuid> [flags] FILE.ndjson|-

Sends events to the intake of a running hookd (POST /{customerId}/webhooks/events,
application/x-ndjson, admin token), as the upstream identity system does. FILE
holds one event per line:
  {"type":"entityUpdated","event":{...},"txn":"<uuid>","toe":<seconds>}
(id, txn and toe are optional); blank lines are skipped; - reads standard input.
An event without an id gets a stable one (a UUIDv5 of FILE's name and the
line's number and content): the intake records an id once, so sending a file
again, whole or --from-line N, stores nothing twice.
The file is streamed in batches of --batch lines (at most 16 MiB each),
--concurrency batches at a time, with progress on stderr.

A line that is not a JSON object, or a batch the intake refuses (4xx), stops
the command with the server's problem details and FILE's line numbers;
nothing of the refused batch is stored, batches before it are. Answers 5xx,
429 and connection errors are retried 4 times with backoff (the ids make a
retried batch safe). At the end a summary shows the events accepted, the
deliveries recorded and the duplicates the intake skipped.

Examples:
  hookd publish --customer 9bc867ed-1f10-420f-8d90-398fde4e4779 events.ndjson
  zcat events.ndjson.gz | hookd publish --customer 9bc867ed-1f10-420f-8d90-398fde4e4779 --batch 500 -
`

func runPublish(ctx context.Context, ua string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var a adminFlags
	var customer string
	batch, concurrency, fromLine := defaultPublishBatch, defaultPublishConcurrency, 1
	f := envflag.New("publish", stderr, publishUsage)
	a.register(f)
	f.String(&customer, "customer", "", "customer id (a UUID) the events belong to")
	f.Int(&batch, "batch", defaultPublishBatch, "lines (events) per request, at most "+strconv.Itoa(wire.MaxIntakeEvents)+": the intake's limit")
	f.Int(&concurrency, "concurrency", defaultPublishConcurrency, "requests in flight at once")
	f.Int(&fromLine, "from-line", 1, "skip FILE's lines before this one (numbered from 1), to resume a run that stopped")
	files, err := f.ParseInterspersed(args, getenv)
	if err != nil {
		return parseErr(stderr, "publish", err)
	}
	cid, err := uuidFlag(stderr, "publish", "customer", customer)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return usageErr(stderr, "publish", "give one FILE (or - for standard input), got %d arguments", len(files))
	}
	if batch < 1 || batch > wire.MaxIntakeEvents || concurrency < 1 || fromLine < 1 {
		return usageErr(stderr, "publish", "--batch must be 1 to %d, --concurrency and --from-line at least 1", wire.MaxIntakeEvents)
	}
	c, err := a.client(ua)
	if err != nil {
		return err
	}
	name, in, total := files[0], io.Reader(os.Stdin), int64(0)
	if name == "-" {
		name = "stdin"
	} else {
		fh, err := os.Open(name)
		if err != nil {
			return err
		}
		defer fh.Close()
		if fi, err := fh.Stat(); err == nil && fi.Mode().IsRegular() {
			if total, err = countLinesFrom(fh, fromLine); err != nil {
				return err
			}
			if _, err := fh.Seek(0, io.SeekStart); err != nil {
				return err
			}
		}
		in = fh
	}
	p := &publisher{
		client: c, http: streamClient(), path: "/" + cid.String() + "/webhooks/events", name: name,
		retries: publishRetries, backoff: publishBackoff, prog: newProgress(stderr, "publish", total, false),
		fromLine: fromLine, idSpace: uuid.NewSHA1(publishIDSpace, []byte(filepath.Base(name))),
		cmd: "publish", target: "the intake",
	}
	start := time.Now()
	err = p.run(ctx, in, batch, concurrency)
	p.prog.finish()
	verb := "published"
	if err != nil {
		verb = "stopped publishing"
	}
	fmt.Fprintf(stdout, "%s %s: %d lines in %d requests in %s; the intake accepted %d events and recorded %d deliveries; %d events were duplicates\n",
		verb, name, p.sent.Load(), p.requests.Load(), time.Since(start).Round(time.Millisecond), p.accepted.Load(), p.deliveries.Load(), p.duplicates.Load())
	return err
}

// publisher sends an NDJSON stream to the intake in batches.
type publisher struct {
	client  *adminClient
	http    *http.Client
	path    string // the intake path
	name    string // FILE, for messages
	retries int
	backoff time.Duration
	prog    *progress
	// fromLine is the first FILE line sent; idSpace the namespace of the
	// ids of events that have none (zero: lines are sent as they are).
	fromLine int
	idSpace  uuid.UUID
	// cmd names the command and target the server's side in messages;
	// check (nil: a JSON object is enough) returns what is wrong with a
	// line, "" when nothing is.
	cmd, target string
	check       func(line []byte) string

	sent, requests, accepted, deliveries, duplicates atomic.Int64

	mu       sync.Mutex
	failLine int // first FILE line of the earliest failed batch
	failErr  error
}

// publishBatch is a request body and the FILE line number of each of its lines.
type publishBatch struct {
	body  []byte
	lines []int
}

// run reads r and sends its lines; it returns the error of the earliest
// batch that failed. Batches queued before a failure are still sent;
// batches after it are not.
func (p *publisher) run(ctx context.Context, r io.Reader, size, concurrency int) error {
	queue := make(chan publishBatch, concurrency)
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range queue {
				if stop.Load() {
					continue
				}
				if err := p.send(ctx, b); err != nil {
					stop.Store(true)
					p.fail(b.lines[0], err)
				}
			}
		}()
	}
	readErr := p.read(ctx, r, size, queue, &stop)
	close(queue)
	wg.Wait()
	if readErr != nil {
		p.fail(readErr.line, readErr)
	}
	if err := ctx.Err(); err != nil && p.failErr == nil {
		return fmt.Errorf("%s of %s interrupted: %w", p.cmd, p.name, err)
	}
	return p.failErr
}

// fail records a batch's failure unless an earlier batch failed too.
func (p *publisher) fail(line int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failErr == nil || line < p.failLine {
		p.failLine, p.failErr = line, err
	}
}

// lineError is a problem with one line of FILE found before sending it.
type lineError struct {
	name string
	line int
	msg  string
}

func (e *lineError) Error() string { return fmt.Sprintf("%s line %d: %s", e.name, e.line, e.msg) }

// read splits r into batches until it ends, a line is bad, stop is set or
// ctx ends.
func (p *publisher) read(ctx context.Context, r io.Reader, size int, queue chan<- publishBatch, stop *atomic.Bool) *lineError {
	br := bufio.NewReaderSize(r, 1<<20)
	var b publishBatch
	flush := func() bool {
		if len(b.lines) == 0 {
			return true
		}
		select {
		case queue <- b:
		case <-ctx.Done():
			return false
		}
		b = publishBatch{}
		return !stop.Load()
	}
	var line []byte
	for n := 1; ; n++ {
		var err error
		line, err = readLine(br, line[:0])
		if errors.Is(err, errLongLine) {
			return &lineError{p.name, n, fmt.Sprintf("longer than %d bytes", publishMaxLine)}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return &lineError{p.name, n, "read: " + err.Error()}
		}
		if t := bytes.TrimSpace(line); len(t) > 0 && n >= p.fromLine {
			if t[0] != '{' || !json.Valid(t) {
				return &lineError{p.name, n, "not a JSON object"}
			}
			if p.check != nil {
				if msg := p.check(t); msg != "" {
					return &lineError{p.name, n, msg}
				}
			}
			if p.idSpace != (uuid.UUID{}) {
				t = p.withID(t, n)
			}
			if len(b.body)+len(t)+1 > publishMaxBatchBytes && !flush() {
				return nil
			}
			b.body = append(append(b.body, t...), '\n')
			b.lines = append(b.lines, n)
			if len(b.lines) >= size && !flush() {
				return nil
			}
		}
		if err != nil { // io.EOF
			flush()
			return nil
		}
	}
}

// withID returns the event line t (a JSON object) of FILE line n with an
// id: its own, or one derived from n and t.
func (p *publisher) withID(t []byte, n int) []byte {
	var probe struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(t, &probe) == nil && probe.ID != nil {
		return t
	}
	id := uuid.NewSHA1(p.idSpace, append(strconv.AppendInt(nil, int64(n), 10), append([]byte{'\n'}, t...)...))
	rest := bytes.TrimSpace(t[1:])
	out := append([]byte(`{"id":"`+id.String()+`"`), ',')
	if len(rest) > 0 && rest[0] == '}' {
		out = out[:len(out)-1]
	}
	return append(out, rest...)
}

// errLongLine reports a line over publishMaxLine.
var errLongLine = errors.New("line too long")

// readLine appends the next line of br (without its newline) to buf.
func readLine(br *bufio.Reader, buf []byte) ([]byte, error) {
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > publishMaxLine {
			return buf, errLongLine
		}
		buf = append(buf, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimSuffix(buf, []byte("\n")), err
	}
}

// countLines counts the lines of r that are not blank.
func countLines(r io.Reader) (int64, error) { return countLinesFrom(r, 1) }

// countLinesFrom counts the lines of r that are not blank, from line from
// on (numbered from 1).
func countLinesFrom(r io.Reader, from int) (int64, error) {
	buf := make([]byte, 1<<20)
	var n int64
	blank := true
	line := 1
	for {
		k, err := r.Read(buf)
		for _, c := range buf[:k] {
			switch c {
			case '\n':
				if !blank && line >= from {
					n++
				}
				blank = true
				line++
			case ' ', '\t', '\r':
			default:
				blank = false
			}
		}
		if errors.Is(err, io.EOF) {
			if !blank && line >= from {
				n++
			}
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// send posts one batch, retrying 5xx, 429 and connection errors.
func (p *publisher) send(ctx context.Context, b publishBatch) error {
	wait := p.backoff
	for attempt := 0; ; attempt++ {
		resp, body, err := p.post(ctx, b.body, len(b.lines))
		if err == nil && resp.StatusCode/100 == 2 {
			p.prog.add(int64(len(b.lines)))
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.prog.fail()
		retry := err != nil || resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests
		if !retry || attempt >= p.retries {
			first, last := b.lines[0], b.lines[len(b.lines)-1]
			if err != nil {
				return fmt.Errorf("%s lines %d-%d were not sent after %d attempts: %w", p.name, first, last, attempt+1, err)
			}
			return fmt.Errorf("%s refused %s lines %d-%d (nothing of them was stored): %s",
				p.target, p.name, first, last, translateProblem(resp, body, p.name, b.lines))
		}
		d := wait
		if resp != nil {
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && time.Duration(s)*time.Second > d {
				d = min(time.Duration(s)*time.Second, publishMaxBackoff*3)
			}
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, publishMaxBackoff)
	}
}

// post sends body to the intake. A 2xx answer is counted; any other
// answer's body is returned for the error message.
func (p *publisher) post(ctx context.Context, body []byte, lines int) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.client.server+p.path, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+p.client.token)
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("User-Agent", p.client.userAgent)
	p.requests.Add(1)
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		// The answer lists every recorded event id: decode the counts only.
		var ans struct {
			Accepted   *int64            `json:"accepted"`
			Recorded   *int64            `json:"recorded"`
			Duplicates []json.RawMessage `json:"duplicates"`
		}
		if json.NewDecoder(resp.Body).Decode(&ans) != nil || ans.Accepted == nil {
			n := int64(lines) // accepted all the same: never resend it
			ans.Accepted = &n
		}
		p.sent.Add(int64(lines))
		p.accepted.Add(*ans.Accepted)
		if ans.Recorded != nil {
			p.deliveries.Add(*ans.Recorded)
		}
		p.duplicates.Add(int64(len(ans.Duplicates)))
		return resp, nil, nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, nil, err
	}
	return resp, data, nil
}

// translateProblem renders the intake's refusal of a batch with FILE's
// line numbers: each invalid parameter the intake places on a line of the
// request (ParamError.Line, counted from 1) is named by the FILE line that
// request line came from, lines[Line-1].
func translateProblem(resp *http.Response, body []byte, name string, lines []int) string {
	return problemText(resp, body, func(pe wire.ParamError) string {
		if pe.Line < 1 || pe.Line > len(lines) {
			return pe.Name
		}
		s := fmt.Sprintf("%s line %d", name, lines[pe.Line-1])
		if pe.Field != "" {
			s += ": " + pe.Field
		}
		return s
	})
}
