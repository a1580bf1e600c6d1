package main

import (
	"context"
	"fmt"
	"time"
)

// An idle hookd's CPU is measured after each phase: the harness lets the
// phase's last work finish for idleSettle, then reads hookd's CPU time over
// idleWindow. Nothing is due then, so the only work left is the
// dispatcher's rescan (one store read a second) and the Go runtime's
// housekeeping.
const (
	idleSettle = 3 * time.Second
	idleWindow = 5 * time.Second
	// idleTarget is the most CPU an idle hookd may use, in cores.
	idleTarget = 0.01
	idleMetric = "hookd CPU while idle after the phase"
)

// measureIdle reports the cores srv uses while it has nothing to do, after
// phase; after names what came before, for the note.
func (h *harness) measureIdle(ctx context.Context, srv *server, phase, after string) error {
	settle := h.scaled(idleSettle, 500*time.Millisecond)
	window := h.scaled(idleWindow, time.Second)
	if err := sleepCtx(ctx, settle); err != nil {
		return err
	}
	path := fmt.Sprintf("/proc/%d/stat", srv.PID)
	a, okA := procTicks(path)
	start := time.Now()
	if err := sleepCtx(ctx, window); err != nil {
		return err
	}
	b, okB := procTicks(path)
	took := time.Since(start)
	if !okA || !okB {
		return fmt.Errorf("%s: hookd's CPU time unreadable in %s", phase, path)
	}
	secs := float64(b-a) / clockTicks
	h.rep.add(phase, idleMetric, secs/took.Seconds(), "cores", atMost(idleTarget, " cores"),
		fmt.Sprintf("%.2f CPU-seconds in %.1f s, from %.1f s after %s", secs, took.Seconds(), settle.Seconds(), after))
	return nil
}

// sleepCtx waits for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
