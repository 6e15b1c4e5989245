package bridge

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Serve runs every task of every connected server on its schedule until ctx is
// done. Servers added or removed while it runs are picked up within refresh
// (default 5s); settings are read at the start of every run. Against a source
// with a Changes feed, the users and collections tasks long-poll it (setting
// long-poll), so a hub change reaches the local directory within about a second.
// A task another replica holds is retried at its interval.
func (e *Engine) Serve(ctx context.Context, refresh time.Duration) error {
	if refresh <= 0 {
		refresh = 5 * time.Second
	}
	type key struct{ server, task string }
	workers := map[key]context.CancelFunc{}
	var wg sync.WaitGroup
	defer func() {
		for _, cancel := range workers {
			cancel()
		}
		wg.Wait()
	}()
	t := time.NewTicker(refresh)
	defer t.Stop()
	for {
		servers, err := ListServers(ctx, e.cfg.Records)
		if err != nil && ctx.Err() == nil {
			e.log.Warn("list servers", "err", err)
		}
		if err == nil {
			want := map[key]bool{}
			for _, s := range servers {
				for _, task := range Tasks {
					k := key{s.ID, task}
					want[k] = true
					if _, ok := workers[k]; ok {
						continue
					}
					wctx, cancel := context.WithCancel(ctx)
					workers[k] = cancel
					wg.Add(1)
					go func() {
						defer wg.Done()
						e.worker(wctx, k.server, k.task)
					}()
				}
			}
			for k, cancel := range workers {
				if !want[k] {
					cancel()
					delete(workers, k)
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// worker runs one (server, task) forever.
func (e *Engine) worker(ctx context.Context, serverID, task string) {
	failures := 0
	for ctx.Err() == nil {
		wait, err := e.tick(ctx, serverID, task)
		if err != nil && ctx.Err() == nil && !errors.Is(err, ErrBusy) {
			failures++
			// Back off on failures (hub down, Redis down): 5s, 10s, … up to the
			// interval or 5 minutes.
			backoff := min(5*time.Second<<min(failures-1, 6), max(wait, 5*time.Second), 5*time.Minute)
			wait = backoff
		} else if err == nil {
			failures = 0
		}
		if wait <= 0 {
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// tick runs the task once and returns how long to wait before the next run.
func (e *Engine) tick(ctx context.Context, serverID, task string) (time.Duration, error) {
	set, err := LoadSettings(ctx, e.cfg.Records)
	if err != nil {
		e.log.Warn("settings unreadable; using what parsed", "err", err)
	}
	interval := set.UsersInterval
	switch task {
	case TaskCollections:
		interval = set.CollectionsInterval
	case TaskCleanup:
		interval = set.CleanupInterval
	}
	srv, err := FindServer(ctx, e.cfg.Records, serverID)
	if err != nil {
		return interval, err
	}
	src, err := e.source(srv)
	if err != nil {
		return interval, err
	}
	_, feed := src.(ChangeFeed)
	opts := RunOptions{}
	longPoll := feed && set.LongPoll > 0 && task != TaskCleanup
	if longPoll {
		opts.Wait = set.LongPoll
	}
	plan, err := e.runTask(ctx, srv, task, opts)
	if err != nil {
		return interval, err
	}
	if longPoll && plan != nil && (plan.Mode == "changes" || plan.Mode == "full") && !plan.Held() {
		// The next run waits on the feed itself: go again at once.
		return 0, nil
	}
	return interval, nil
}
