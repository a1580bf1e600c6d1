package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc CPU times; it is
// 100 on every Linux platform Go supports.
const clockTicks = 100

// cpuTimes is a reading of the machine's and two processes' CPU time.
type cpuTimes struct {
	at                 time.Time
	busy, steal, idle  uint64 // machine, all CPUs, in ticks
	server, harness    uint64 // hookd and this process, in ticks
	machineOK, procsOK bool
}

// readCPU reads /proc/stat, /proc/<pid>/stat and /proc/self/stat.
func readCPU(pid int) cpuTimes {
	t := cpuTimes{at: time.Now()}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		if len(f) >= 9 && f[0] == "cpu" {
			v := make([]uint64, len(f)-1)
			for i := range v {
				v[i], _ = strconv.ParseUint(f[i+1], 10, 64)
			}
			// user nice system idle iowait irq softirq steal (guest is in user)
			t.busy = v[0] + v[1] + v[2] + v[5] + v[6]
			t.idle = v[3] + v[4]
			t.steal = v[7]
			t.machineOK = true
		}
	}
	s, okS := procTicks(fmt.Sprintf("/proc/%d/stat", pid))
	h, okH := procTicks("/proc/self/stat")
	t.server, t.harness, t.procsOK = s, h, okS && okH
	return t
}

// procTicks returns utime+stime of a /proc/<pid>/stat file.
func procTicks(path string) (uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	// The command name is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b)[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	return u + s, err1 == nil && err2 == nil
}

// cpuUsage is the CPU used over a window, in cores (1 = one CPU busy for
// the whole window).
type cpuUsage struct {
	Server, Harness, Other, Steal, Idle float64
	ok                                  bool
}

// usageSince returns the usage between a and b.
func usageSince(a, b cpuTimes) cpuUsage {
	secs := b.at.Sub(a.at).Seconds()
	if secs <= 0 || !a.machineOK || !b.machineOK || !a.procsOK || !b.procsOK {
		return cpuUsage{}
	}
	cores := func(ticks uint64) float64 { return float64(ticks) / clockTicks / secs }
	u := cpuUsage{
		Server:  cores(b.server - a.server),
		Harness: cores(b.harness - a.harness),
		Steal:   cores(b.steal - a.steal),
		Idle:    cores(b.idle - a.idle),
		ok:      true,
	}
	u.Other = max(cores(b.busy-a.busy)-u.Server-u.Harness, 0)
	return u
}

// plus adds u, measured over d, to the core-seconds in acc: acc's fields
// are then core-seconds, not cores.
func (acc cpuUsage) plus(u cpuUsage, d time.Duration) cpuUsage {
	if !u.ok {
		return acc
	}
	s := d.Seconds()
	return cpuUsage{
		Server: acc.Server + u.Server*s, Harness: acc.Harness + u.Harness*s, Other: acc.Other + u.Other*s,
		Steal: acc.Steal + u.Steal*s, Idle: acc.Idle + u.Idle*s, ok: true,
	}
}

// String describes the usage for a note.
func (u cpuUsage) String() string {
	if !u.ok {
		return "CPU use unknown"
	}
	return fmt.Sprintf("CPU cores: hookd %.2f, harness %.2f, other processes %.2f, stolen by the hypervisor %.2f, idle %.2f",
		u.Server, u.Harness, u.Other, u.Steal, u.Idle)
}

// othersNote describes the CPU that hookd, the other processes and the
// hypervisor took between a and b (readings of readCPU(hookd's pid)) while
// the harness ran its signing loops.
func othersNote(a, b cpuTimes) string {
	u := usageSince(a, b)
	if !u.ok {
		return "CPU use unknown"
	}
	return fmt.Sprintf("meanwhile hookd took %.2f cores, other processes %.2f, the hypervisor %.2f", u.Server, u.Other, u.Steal)
}
