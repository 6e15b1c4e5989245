package bridge

import (
	"context"
	"errors"
	"fmt"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/bridge/state"
)

// cleanup runs the cleanup task: accounts of this server soft-deleted longer
// than the grace period are purged (with their links), and expired bridge
// records (setup secrets) are removed. Sessions and the replay cache expire in
// the state backend itself.
func (r *run) cleanup(ctx context.Context) (*Plan, error) {
	p := newPlan(r.srv.ID, r.task, "full", r.e.now())
	cutoff := r.e.now().Add(-r.set.DeleteGrace)
	q := local.AccountQuery{Server: r.srv.ID, Deleted: local.DeletedOnly, DeletedBefore: cutoff, Limit: local.MaxBatch}
	for {
		accts, next, err := r.e.cfg.Target.ListAccounts(ctx, q)
		if errors.Is(err, local.ErrUnsupported) {
			// A target without soft delete (a SCIM endpoint) keeps deleted
			// accounts suspended; an operator removes them.
			r.e.log.Info("the local directory cannot purge; soft-deleted accounts stay suspended", "server", r.srv.ID)
			break
		}
		if err != nil {
			return p, fmt.Errorf("local directory: %w", err)
		}
		ids := make([]string, 0, len(accts))
		hubIDs := make([]string, 0, len(accts))
		for _, a := range accts {
			ids = append(ids, a.ID)
			if a.HubUserID != "" {
				hubIDs = append(hubIDs, a.HubUserID)
			}
			p.add(Item{Action: ActPurge, Kind: "user", HubID: a.HubUserID, LocalID: a.ID, Name: a.Username,
				Rule: fmt.Sprintf("soft-deleted %s, past the grace period of %s: purged", a.Deleted.Format("2006-01-02 15:04"), FormatDuration(r.set.DeleteGrace))})
		}
		if !r.dry && len(ids) > 0 {
			if _, err := r.e.cfg.Target.PurgeAccounts(ctx, ids); err != nil {
				return p, fmt.Errorf("local directory: %w", err)
			}
			if _, err := r.applyLinks(ctx, state.KindUser, nil, hubIDs, nil, nil); err != nil {
				return p, err
			}
		}
		if next == "" {
			break
		}
		q.After = next
	}
	if !r.dry {
		if n, err := r.e.cfg.Records.DeleteExpiredRecords(ctx); err != nil {
			r.e.log.Warn("delete expired records", "err", err)
		} else if n > 0 {
			r.e.log.Info("expired records removed", "count", n)
		}
	}
	return p, nil
}
