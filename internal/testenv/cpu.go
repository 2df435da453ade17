package testenv

import (
	"syscall"
	"time"
)

// ProcessCPU is this process's user+system CPU time so far. Benchmarks
// report it next to wall time: on a shared machine CPU time is the
// steadier figure, and CPU time above wall time says the work used more
// than one core.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
