package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// op sends one request. worker is the caller's index (0…conc-1) and i the
// request's sequence number within the phase; it returns an error for a failed
// request or an unexpected answer.
type op func(ctx context.Context, worker, i int) error

// result is one phase of one run.
type result struct {
	Phase    string        `json:"phase"`
	Mode     string        `json:"mode"` // "closed cN", "open R/s", "sequential"
	Requests int           `json:"requests"`
	Errors   int           `json:"errors"`
	FirstErr string        `json:"firstError,omitempty"`
	Elapsed  time.Duration `json:"elapsedNs"`
	PerSec   float64       `json:"perSecond"`
	P50      time.Duration `json:"p50Ns"`
	P99      time.Duration `json:"p99Ns"`
	Max      time.Duration `json:"maxNs"`
	PeakRSS  int64         `json:"peakRSSBytes"` // hub VmHWM during the phase (0: unknown)
	// HubCPU and GenCPU are the CPU time the hub and the load generator spent
	// per request: what the hub costs whatever else runs on the machine.
	HubCPU time.Duration `json:"hubCPUPerRequestNs"`
	GenCPU time.Duration `json:"generatorCPUPerRequestNs"`
}

// recorder collects latencies and errors from many goroutines.
type recorder struct {
	mu       sync.Mutex
	lat      []time.Duration
	errs     int
	firstErr string
}

func (r *recorder) add(lat []time.Duration, errs int, first string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lat = append(r.lat, lat...)
	r.errs += errs
	if r.firstErr == "" {
		r.firstErr = first
	}
}

func (r *recorder) result(phase, mode string, elapsed time.Duration) result {
	res := result{Phase: phase, Mode: mode, Requests: len(r.lat), Errors: r.errs, FirstErr: r.firstErr, Elapsed: elapsed}
	if elapsed > 0 {
		res.PerSec = float64(len(r.lat)-r.errs) / elapsed.Seconds()
	}
	slices.Sort(r.lat)
	res.P50, res.P99 = percentile(r.lat, 0.50), percentile(r.lat, 0.99)
	if len(r.lat) > 0 {
		res.Max = r.lat[len(r.lat)-1]
	}
	return res
}

// percentile is the q-quantile of sorted (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	k := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(k, len(sorted)-1))]
}

// closedLoop runs conc workers that each send the next request as soon as the
// last one is answered, for dur or until limit requests (0: no limit) have
// been sent. It measures throughput: how much the hub serves at this
// concurrency.
func closedLoop(ctx context.Context, phase string, conc int, dur time.Duration, limit int, fn op) result {
	var rec recorder
	var next atomic.Int64
	start := time.Now()
	deadline := start.Add(dur)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			var lat []time.Duration
			errs, first := 0, ""
			for ctx.Err() == nil && (dur == 0 || time.Now().Before(deadline)) {
				i := int(next.Add(1)) - 1
				if limit > 0 && i >= limit {
					break
				}
				t := time.Now()
				err := fn(ctx, w, i)
				lat = append(lat, time.Since(t))
				if err != nil {
					errs++
					if first == "" {
						first = err.Error()
					}
				}
			}
			rec.add(lat, errs, first)
		})
	}
	wg.Wait()
	mode := fmt.Sprintf("closed c%d", conc)
	if conc == 1 {
		mode = "sequential"
	}
	return rec.result(phase, mode, time.Since(start))
}

// openLoop sends requests at a fixed rate for dur, whatever the answers do,
// through up to workers concurrent requests. A request's latency counts from
// the moment it was due, so time spent queued behind slow answers is
// measured too (no coordinated omission).
func openLoop(ctx context.Context, phase string, rate float64, workers int, dur time.Duration, fn op) result {
	var rec recorder
	total := int(rate * dur.Seconds())
	due := make(chan time.Time, total)
	start := time.Now()
	go func() {
		defer close(due)
		interval := time.Duration(float64(time.Second) / rate)
		for i := range total {
			t := start.Add(time.Duration(i) * interval)
			if d := time.Until(t); d > time.Millisecond {
				// Sleep only when well ahead; due requests go out in a burst.
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
			due <- t
		}
	}()
	var wg sync.WaitGroup
	var seq atomic.Int64
	for w := range workers {
		wg.Go(func() {
			var lat []time.Duration
			errs, first := 0, ""
			for t := range due {
				if ctx.Err() != nil {
					break
				}
				err := fn(ctx, w, int(seq.Add(1))-1)
				lat = append(lat, time.Since(t))
				if err != nil {
					errs++
					if first == "" {
						first = err.Error()
					}
				}
			}
			rec.add(lat, errs, first)
		})
	}
	wg.Wait()
	return rec.result(phase, fmt.Sprintf("open %.0f/s", rate), time.Since(start))
}
