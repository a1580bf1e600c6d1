package diskspace

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
)

// mountTmpfs mounts a tmpfs of size bytes on a fresh directory, unmounted
// at cleanup; it skips the test where mounting is refused (not root, or a
// container without the capability).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s): this test needs a small file system to fill", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("unmount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func fill(t *testing.T, path string, n int) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Repeat([]byte{'x'}, n), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestMonitorReportsLowOnceAndRecovers(t *testing.T) {
	dir := mountTmpfs(t, "8m")
	var logs bytes.Buffer
	m := New(Options{Dir: dir, Reserve: 4 << 20, Log: zerolog.New(&logs)})
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	if low, _ := m.Low(); low {
		t.Fatal("got low on an empty 8 MiB file system with a 4 MiB reserve")
	}
	fill(t, filepath.Join(dir, "big"), 5<<20)
	for range 2 {
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
	}
	low, reason := m.Low()
	if !low || !strings.Contains(reason, "below the reserve of 4.0 MiB") {
		t.Fatalf("got %v %q with 3 MiB free, want low and the reserve named", low, reason)
	}
	if got := testutil.ToFloat64(m.lowGauge); got != 1 {
		t.Errorf("got hookd_disk_low %v, want 1", got)
	}
	if err := os.Remove(filepath.Join(dir, "big")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
	}
	if low, reason := m.Low(); low || reason != "" {
		t.Fatalf("got %v %q after the space was freed, want not low", low, reason)
	}
	if got := testutil.ToFloat64(m.lowGauge); got != 0 {
		t.Errorf("got hookd_disk_low %v, want 0", got)
	}
	if got := testutil.ToFloat64(m.reserve); got != 4<<20 {
		t.Errorf("got hookd_disk_reserve_bytes %v, want %d", got, 4<<20)
	}
	out := logs.String()
	if n := strings.Count(out, `"level":"warn"`); n != 1 {
		t.Errorf("got %d warn lines over two low reads, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, `"level":"info"`); n != 1 {
		t.Errorf("got %d info lines over two reads after recovery, want 1:\n%s", n, out)
	}
}

func TestMonitorDefaultAndNoReserve(t *testing.T) {
	dir := mountTmpfs(t, "40m")
	// The default reserve of a 40 MiB file system is the 32 MiB floor.
	m := New(Options{Dir: dir})
	fill(t, filepath.Join(dir, "big"), 10<<20)
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	if low, _ := m.Low(); !low {
		t.Error("got not low with 30 MiB free and the default reserve of 32 MiB")
	}
	off := New(Options{Dir: dir, Reserve: -1})
	fill(t, filepath.Join(dir, "big"), 40<<20-4096)
	if err := off.Check(); err != nil {
		t.Fatal(err)
	}
	if low, _ := off.Low(); low {
		t.Error("got low with the reserve off")
	}
}

func TestDefaultReserve(t *testing.T) {
	for _, c := range []struct{ total, want uint64 }{
		{80 << 20, DefaultReserveFloor},
		{1 << 40, (1 << 40) / 100 * DefaultReservePercent},
	} {
		if got := DefaultReserve(c.total); got != c.want {
			t.Errorf("DefaultReserve(%d): got %d, want %d", c.total, got, c.want)
		}
	}
}

func TestParseReserve(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"auto", 0}, {"0", -1}, {"0MiB", -1}, {"1234", 1234}, {"64MiB", 64 << 20},
		{"2GB", 2e9}, {"10 kib", 10 << 10}, {"1TiB", 1 << 40},
	} {
		got, err := ParseReserve(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseReserve(%q): got %d, %v, want %d", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"-1", "MiB", "5 parsecs", "1.5GB", "2000TiB", "99999999999999999999"} {
		if _, err := ParseReserve(in); err == nil {
			t.Errorf("ParseReserve(%q): got no error", in)
		}
	}
}

func TestMonitorStartReadsAndCloseStops(t *testing.T) {
	m := New(Options{Dir: t.TempDir(), Reserve: maxReserve})
	m.Start(context.Background())
	if low, _ := m.Low(); !low {
		t.Error("got not low after Start with a 1 PiB reserve: Start reads at once")
	}
	m.Close()
	m.Close() // twice is harmless
	select {
	case <-m.done:
	default:
		t.Error("the goroutine is still running after Close")
	}
}

// The space the waiting deliveries will need is kept free on top of the
// reserve.
func TestMonitorKeepsThePendingGrowthFree(t *testing.T) {
	dir := mountTmpfs(t, "8m")
	var pending atomic.Uint64
	m := New(Options{Dir: dir, Reserve: 1 << 20, Pending: func() (uint64, error) { return pending.Load(), nil }})
	fill(t, filepath.Join(dir, "big"), 4<<20) // 4 MiB free
	pending.Store(2 << 20)
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	if low, reason := m.Low(); low {
		t.Fatalf("got low (%s) with 4 MiB free for a 1 MiB reserve and 2 MiB pending", reason)
	}
	pending.Store(4 << 20)
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	low, reason := m.Low()
	if !low || !strings.Contains(reason, "plus 4.0 MiB for the deliveries waiting") {
		t.Fatalf("got %v %q with 4 MiB free for a 1 MiB reserve and 4 MiB pending, want low and the pending space named", low, reason)
	}
	if got := testutil.ToFloat64(m.pending); got != 4<<20 {
		t.Errorf("got hookd_disk_pending_bytes %v, want %d", got, 4<<20)
	}
	pending.Store(0) // the backlog drained
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	if low, _ := m.Low(); low {
		t.Error("got low after the backlog drained")
	}
	// With the reserve off nothing is kept free.
	off := New(Options{Dir: dir, Reserve: -1, Pending: func() (uint64, error) { return 1 << 40, nil }})
	if err := off.Check(); err != nil {
		t.Fatal(err)
	}
	if low, _ := off.Low(); low {
		t.Error("got low with the reserve off")
	}
}
