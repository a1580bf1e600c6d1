package delivery

import (
	"math/rand/v2"
	"net/http"
	"testing"
	"time"
)

func TestDefaultSchedule(t *testing.T) {
	s := DefaultSchedule()
	want := []time.Duration{0, 3 * time.Second, 30 * time.Second, 5 * time.Minute, time.Hour, 24 * time.Hour}
	if len(s.Delays) != len(want) {
		t.Fatalf("delays: got %v, want %v", s.Delays, want)
	}
	for i := range want {
		if s.Delays[i] != want[i] {
			t.Errorf("Delays[%d]: got %v, want %v", i, s.Delays[i], want[i])
		}
	}
	if s.Jitter != 0.10 {
		t.Errorf("Jitter: got %v, want 0.10", s.Jitter)
	}
	if s.Attempts() != 6 {
		t.Errorf("Attempts: got %d, want 6", s.Attempts())
	}
}

func TestScheduleNext(t *testing.T) {
	s := DefaultSchedule()
	tests := []struct {
		name       string
		attempt    int
		retryAfter time.Duration
		min, max   time.Duration
		ok         bool
	}{
		{name: "after attempt 1", attempt: 1, min: 3 * time.Second, max: 3300 * time.Millisecond, ok: true},
		{name: "after attempt 2", attempt: 2, min: 30 * time.Second, max: 33 * time.Second, ok: true},
		{name: "after attempt 3", attempt: 3, min: 5 * time.Minute, max: 330 * time.Second, ok: true},
		{name: "after attempt 4", attempt: 4, min: time.Hour, max: 66 * time.Minute, ok: true},
		{name: "after attempt 5", attempt: 5, min: 24 * time.Hour, max: 26*time.Hour + 24*time.Minute, ok: true},
		{name: "after attempt 6: exhausted", attempt: 6, ok: false},
		{name: "far past the end", attempt: 100, ok: false},
		{name: "before any attempt", attempt: 0, min: 0, max: 0, ok: true},
		{name: "longer Retry-After wins", attempt: 1, retryAfter: time.Minute, min: time.Minute, max: time.Minute, ok: true},
		{name: "shorter Retry-After loses", attempt: 2, retryAfter: time.Second, min: 30 * time.Second, max: 33 * time.Second, ok: true},
		{name: "Retry-After on the last attempt", attempt: 6, retryAfter: time.Minute, ok: false},
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 1000 {
				wait, ok := s.Next(tt.attempt, tt.retryAfter, rnd)
				if ok != tt.ok {
					t.Fatalf("ok: got %v, want %v", ok, tt.ok)
				}
				if !ok {
					return
				}
				if wait < tt.min || wait > tt.max {
					t.Fatalf("wait: got %v, want within [%v, %v]", wait, tt.min, tt.max)
				}
			}
		})
	}
}

func TestScheduleJitterSpread(t *testing.T) {
	s := Schedule{Delays: []time.Duration{0, 10 * time.Second}, Jitter: 0.5}
	rnd := rand.New(rand.NewPCG(7, 7))
	var low, high bool
	for range 1000 {
		wait, _ := s.Next(1, 0, rnd)
		low = low || wait < 11*time.Second
		high = high || wait > 14*time.Second
	}
	if !low || !high {
		t.Errorf("jitter does not spread over [10s, 15s]: saw low %v, high %v", low, high)
	}

	// Seeded sources give repeatable waits.
	a, _ := s.Next(1, 0, rand.New(rand.NewPCG(3, 4)))
	b, _ := s.Next(1, 0, rand.New(rand.NewPCG(3, 4)))
	if a != b {
		t.Errorf("same seed: got %v and %v, want equal waits", a, b)
	}

	// No jitter gives the delay exactly; a nil source works.
	exact := Schedule{Delays: []time.Duration{0, time.Second}}
	if wait, ok := exact.Next(1, 0, nil); !ok || wait != time.Second {
		t.Errorf("no jitter: got %v, %v, want 1s, true", wait, ok)
	}
	if wait, ok := s.Next(1, 0, nil); !ok || wait < 10*time.Second || wait > 15*time.Second {
		t.Errorf("nil source: got %v, %v, want within [10s, 15s], true", wait, ok)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		h    string
		want time.Duration
	}{
		{"", 0},
		{"   ", 0},
		{"120", 120 * time.Second},
		{" 5 ", 5 * time.Second},
		{"0", 0},
		{"-1", 0},
		{"1.5", 0},
		{"soon", 0},
		{"86400", 24 * time.Hour},
		{"86401", 24 * time.Hour},
		{"99999999999999999999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{now.Add(72 * time.Hour).Format(http.TimeFormat), 24 * time.Hour},
		{"Saturday, 01-Mar-25 12:10:00 GMT", 10 * time.Minute},
		{"Sat Mar  1 12:00:30 2025", 30 * time.Second},
	}
	for _, tt := range tests {
		if got := ParseRetryAfter(tt.h, now); got != tt.want {
			t.Errorf("ParseRetryAfter(%q): got %v, want %v", tt.h, got, tt.want)
		}
	}
}
