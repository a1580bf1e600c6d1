package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
)

// Progress report intervals: a terminal line is redrawn often, a log (a
// file or pipe) gets a plain line now and then.
const (
	progressTTYEvery = 200 * time.Millisecond
	progressLogEvery = 5 * time.Second
	progressBarWidth = 24
)

// progress reports the advance of a long CLI command on stderr: on a
// terminal one line redrawn with \r (with a bar when the total is known),
// otherwise a plain line every few seconds. It is safe for concurrent use.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	label string
	bytes bool  // counts bytes; else lines
	total int64 // 0 when unknown
	base  int64 // already done before this run (a resumed download)
	done  int64
	errs  int
	start time.Time
	last  time.Time
	every time.Duration
	width int // length of the last terminal line, to blank it
}

// newProgress starts a report on w labelled label; total is 0 when unknown.
func newProgress(w io.Writer, label string, total int64, bytes bool) *progress {
	p := &progress{w: w, label: label, total: total, bytes: bytes, start: time.Now(), every: progressLogEvery}
	if f, ok := w.(*os.File); ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())) {
		p.tty, p.every = true, progressTTYEvery
	}
	p.last = p.start
	return p
}

// setBase records units done by an earlier run; they count toward the
// total but not toward the rate.
func (p *progress) setBase(n int64) {
	p.mu.Lock()
	p.base = n
	p.mu.Unlock()
}

// add counts n more units and redraws when it is time.
func (p *progress) add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	if now := time.Now(); now.Sub(p.last) >= p.every {
		p.last = now
		p.draw(now, false)
	}
}

// fail counts one error (a retried request, say).
func (p *progress) fail() {
	p.mu.Lock()
	p.errs++
	p.mu.Unlock()
}

// Write lets progress count the bytes of an io.Copy through io.MultiWriter.
func (p *progress) Write(b []byte) (int, error) {
	p.add(int64(len(b)))
	return len(b), nil
}

// finish draws the final state and ends the terminal line.
func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.draw(time.Now(), true)
}

// draw writes one report; the caller holds mu.
func (p *progress) draw(now time.Time, final bool) {
	var b strings.Builder
	b.WriteString(p.label)
	b.WriteString(": ")
	cur := p.base + p.done
	if p.tty && p.total > 0 {
		fill := int(float64(progressBarWidth) * float64(min(cur, p.total)) / float64(p.total))
		b.WriteString("[" + strings.Repeat("=", fill) + strings.Repeat(" ", progressBarWidth-fill) + "] ")
	}
	if p.bytes {
		b.WriteString(humanBytes(cur))
		if p.total > 0 {
			b.WriteString(" / " + humanBytes(p.total))
		}
	} else {
		b.WriteString(groupDigits(cur))
		if p.total > 0 {
			b.WriteString(" / " + groupDigits(p.total))
		}
		b.WriteString(" lines")
	}
	if p.total > 0 {
		fmt.Fprintf(&b, " (%d%%)", min(100, cur*100/p.total))
	}
	if secs := now.Sub(p.start).Seconds(); secs > 0 {
		rate := float64(p.done) / secs
		if p.bytes {
			b.WriteString(", " + humanBytes(int64(rate)) + "/s")
		} else {
			b.WriteString(", " + groupDigits(int64(rate)) + " events/s")
		}
	}
	if !p.bytes || p.errs > 0 {
		fmt.Fprintf(&b, ", %d errors", p.errs)
	}
	line := b.String()
	if !p.tty {
		fmt.Fprintln(p.w, line)
		return
	}
	pad := ""
	if n := p.width - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	p.width = len(line)
	end := ""
	if final {
		end = "\n"
	}
	fmt.Fprint(p.w, "\r"+line+pad+end)
}

// humanBytes formats n with a binary unit: 512 B, 1.5 KiB, 12.3 MiB.
func humanBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= 1024
		if v < 1024 || u == "TiB" {
			return fmt.Sprintf("%.1f %s", v, u)
		}
	}
	return ""
}

// groupDigits formats n with thousands separators: 1,234,567.
func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
