//go:build unix

package hub

import (
	"syscall"
	"time"
)

// cpuTime is the process's user+system CPU time so far: the benchmarks
// report throughput per CPU-second, which other load on the machine does not
// distort the way it distorts wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
