package cli

import (
	"bytes"
	"strings"
	"testing"
)

func TestProgressOnTerminalAndLog(t *testing.T) {
	var term bytes.Buffer
	p := newProgress(&term, "backup", 4096, true)
	p.tty = true
	p.add(1024)
	p.finish()
	got := term.String()
	if !strings.HasPrefix(got, "\rbackup: [======") || !strings.Contains(got, "1.0 KiB / 4.0 KiB (25%)") || !strings.HasSuffix(got, "\n") {
		t.Errorf("got terminal line %q, want a \\r-redrawn bar with 1.0 KiB / 4.0 KiB (25%%) ending the line", got)
	}

	var log bytes.Buffer
	p = newProgress(&log, "publish", 0, false)
	p.add(1500)
	p.fail()
	p.finish()
	if got := log.String(); strings.Contains(got, "\r") || !strings.HasPrefix(got, "publish: 1,500 lines, ") || !strings.Contains(got, "events/s, 1 errors\n") {
		t.Errorf("got log line %q, want a plain line with the count, the rate and 1 errors", got)
	}
}

func TestHumanBytesAndGroupDigits(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d): got %q, want %q", n, got, want)
		}
	}
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1234: "-1,234"} {
		if got := groupDigits(n); got != want {
			t.Errorf("groupDigits(%d): got %q, want %q", n, got, want)
		}
	}
}
