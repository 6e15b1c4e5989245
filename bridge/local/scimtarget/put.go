package scimtarget

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/scim"
)

// batch is the working set of one PutAccounts call: the users it touches, read
// once and kept current as items apply.
type batch struct {
	byID  map[string]*fetched
	byKey map[string]string // userKey → id
}

func (b *batch) add(f fetched) {
	b.byID[f.acct.ID] = &f
	if f.acct.Auth == local.AuthConnect {
		b.byKey[userKey(f.acct.Server, f.acct.HubUserID)] = f.acct.ID
	}
}

// PutAccounts upserts accounts one request at a time (the target has no
// transactions). A failure to reach the target stops the batch with
// ErrUnavailable: items before it were written, and a retry of the whole batch
// finds them unchanged.
func (t *Target) PutAccounts(ctx context.Context, puts []local.Put) ([]local.Result, error) {
	if len(puts) > local.MaxBatch {
		return nil, fmt.Errorf("put %d accounts: at most %d: %w", len(puts), local.MaxBatch, local.ErrInvalid)
	}
	b := &batch{byID: map[string]*fetched{}, byKey: map[string]string{}}
	// Prefetch the connect accounts named by hub key, keyChunk per request.
	keys := map[string][]string{}
	for _, p := range puts {
		if a := p.Account; a.ID == "" && a.Server != "" && a.HubUserID != "" {
			keys[a.Server] = append(keys[a.Server], a.HubUserID)
		}
	}
	for server, ids := range keys {
		for i := 0; i < len(ids); i += local.MaxBatch {
			m, err := t.fetchByHubID(ctx, server, ids[i:min(len(ids), i+local.MaxBatch)])
			if err != nil {
				return nil, err
			}
			for _, f := range m {
				b.add(f)
			}
		}
	}
	rs := make([]local.Result, len(puts))
	for i, p := range puts {
		r, err := t.putOne(ctx, b, p)
		if err != nil {
			return nil, err
		}
		rs[i] = r
	}
	return rs, nil
}

// itemErr reports whether err belongs to the item (a contract error the target
// answered) rather than to the batch (the target unreachable).
func itemErr(err error) bool {
	return errors.Is(err, local.ErrNotFound) || errors.Is(err, local.ErrConflict) ||
		errors.Is(err, local.ErrInvalid) || errors.Is(err, local.ErrPrivileged) || errors.Is(err, local.ErrUnsupported)
}

func (t *Target) putOne(ctx context.Context, b *batch, p local.Put) (local.Result, error) {
	r, err := t.putItem(ctx, b, p)
	if err != nil {
		if itemErr(err) {
			return local.Result{Err: err}, nil
		}
		return local.Result{}, err
	}
	return r, nil
}

func (t *Target) putItem(ctx context.Context, b *batch, p local.Put) (local.Result, error) {
	a := p.Account
	var stored *fetched
	switch {
	case a.ID != "":
		if stored = b.byID[a.ID]; stored == nil {
			f, err := t.getUser(ctx, a.ID)
			if err != nil {
				return local.Result{}, err
			}
			b.add(f)
			stored = b.byID[a.ID]
		}
	case a.Server != "" && a.HubUserID != "":
		if id, ok := b.byKey[userKey(a.Server, a.HubUserID)]; ok {
			stored = b.byID[id]
		}
	}
	if stored == nil {
		c := local.Normalize(a)
		c.ID, c.Created, c.Modified = "", time.Time{}, time.Time{}
		if err := local.CheckAccount(c); err != nil {
			return local.Result{}, err
		}
		if err := t.checkStorable(c); err != nil {
			return local.Result{}, err
		}
		created, err := t.createUser(ctx, c)
		if err == nil {
			b.add(created)
			return local.Result{Account: created.acct, Op: local.OpCreated}, nil
		}
		if !errors.Is(err, local.ErrConflict) || c.Auth != local.AuthConnect {
			return local.Result{}, err
		}
		// Taken: by this very hub user (an earlier try of this put, or another
		// writer) — then it is an update — or by another account's username.
		got, lerr := t.fetchByHubID(ctx, c.Server, []string{c.HubUserID})
		if lerr != nil {
			return local.Result{}, lerr
		}
		f, ok := got[c.HubUserID]
		if !ok {
			return local.Result{}, err
		}
		b.add(f)
		stored = b.byID[f.acct.ID]
	}
	if p.Fields == 0 {
		return local.Result{}, fmt.Errorf("update of account %s without a field mask: %w", stored.acct.ID, local.ErrInvalid)
	}
	// Only the synced fields that changed are written (userpatch.go): by PATCH,
	// or by a merge onto the raw resource and a PUT when the target has no
	// PATCH or a change has no PATCH path.
	merge := t.noPatch.Load()
	noTarget := false // a PATCH got 400 noTarget; the next one follows a fresh read
	for attempt := 0; ; attempt++ {
		var raw rawUser
		if merge {
			// A merge starts from the whole resource as it is now.
			r, err := t.getRaw(ctx, stored.acct.ID)
			if err != nil {
				return local.Result{}, err
			}
			raw = r
			b.add(r.f)
			stored = b.byID[r.f.acct.ID]
		} else if stored.user == nil {
			f, err := t.getUser(ctx, stored.acct.ID)
			if err != nil {
				return local.Result{}, err
			}
			b.add(f)
			stored = b.byID[f.acct.ID]
		}
		m := local.Merge(stored.acct, a, p.Fields)
		if p.Fields.Has(local.FieldCustomFields) && t.cfg.Extension {
			// The list is shared with the site application: the hub's names are
			// written, the site's own fields stay (customFieldOps).
			m.CustomFields = keepSiteFields(stored.acct.CustomFields, m.CustomFields)
			m = local.Normalize(m)
		}
		if err := local.CheckAccount(m); err != nil {
			return local.Result{}, fmt.Errorf("account %s: %w", stored.acct.ID, err)
		}
		if err := t.checkStorable(m); err != nil {
			return local.Result{}, err
		}
		if err := local.CheckTakeover(stored.acct, m); err != nil {
			return local.Result{}, err
		}
		if m.Auth == local.AuthConnect && (m.Server != stored.acct.Server || m.HubUserID != stored.acct.HubUserID) {
			// The target does not keep externalId unique: check the new key here.
			other, err := t.AccountByHubID(ctx, m.Server, m.HubUserID)
			if err == nil && other.ID != stored.acct.ID {
				return local.Result{}, fmt.Errorf("hub user (%s, %s) is linked to account %s: %w", m.Server, m.HubUserID, other.ID, local.ErrConflict)
			}
			if err != nil && !errors.Is(err, local.ErrNotFound) {
				return local.Result{}, err
			}
		}
		if local.SameContent(t.view(stored.acct), t.view(m)) {
			return local.Result{Account: stored.acct, Op: local.OpUnchanged}, nil
		}
		ops := t.userOps(stored.user, stored.acct, m)
		if len(ops) == 0 {
			return local.Result{Account: stored.acct, Op: local.OpUnchanged}, nil
		}
		if !merge && !patchable(ops) {
			merge = true
			continue
		}
		var updated fetched
		var err error
		if merge {
			updated, err = t.putMerged(ctx, raw, ops, m)
		} else {
			updated, err = t.patchUser(ctx, stored.acct.ID, ops, stored.etag)
			if errors.Is(err, errNoPatch) {
				t.noPatch.Store(true)
				merge = true
				continue
			}
			// A target without value-path filters: this account is merged (the
			// target may still PATCH plain paths for others). So is a filter that
			// matches nothing again right after a fresh read.
			if errors.Is(err, errPatchPath) || (errors.Is(err, errNoTarget) && noTarget) {
				merge = true
				continue
			}
			if errors.Is(err, errNoTarget) {
				noTarget = true
			}
		}
		if err == nil {
			b.add(updated)
			return local.Result{Account: updated.acct, Op: local.OpUpdated}, nil
		}
		// 412 (or a PATCH whose value filter no longer matches): the site
		// application changed the user since we read it; merge again onto the
		// current version.
		if !errors.Is(err, errPrecondition) || attempt >= 4 {
			if errors.Is(err, errPrecondition) {
				err = fmt.Errorf("account %s keeps changing: %w", stored.acct.ID, local.ErrConflict)
			}
			return local.Result{}, err
		}
		if merge {
			continue // the next attempt reads the raw resource again
		}
		f, gerr := t.getUser(ctx, stored.acct.ID)
		if gerr != nil {
			return local.Result{}, gerr
		}
		b.add(f)
		stored = b.byID[f.acct.ID]
	}
}

var errPrecondition = fmt.Errorf("precondition failed: %w", local.ErrConflict)

// errNoTarget: a PATCH value filter matched nothing (400 noTarget). Like a 412
// the user is read again; a second one after the fresh read merges instead.
var errNoTarget = fmt.Errorf("patch filter matched no value: %w", errPrecondition)

// errPatchPath: the target refused a PATCH path or value filter (400
// invalidPath or invalidFilter); the account is merged and PUT instead.
var errPatchPath = errors.New("patch path unsupported")

func (t *Target) readUser(op string, resp *response) (fetched, error) {
	var u scim.User
	if err := decode(op, resp, &u); err != nil {
		return fetched{}, err
	}
	if u.ID == "" {
		return fetched{}, fmt.Errorf("scim target: %s: no id in the answer: %w", op, local.ErrUnavailable)
	}
	return fetched{acct: t.account(u), etag: etagOf(resp, &u), user: &u}, nil
}

func (t *Target) createUser(ctx context.Context, a local.Account) (fetched, error) {
	resp, err := t.do(ctx, http.MethodPost, "/Users", t.userQuery(), t.userResource(a), nil)
	if err != nil {
		return fetched{}, err
	}
	if resp.status != http.StatusCreated && resp.status != http.StatusOK {
		return fetched{}, statusErr(fmt.Sprintf("create user %q", a.Username), resp)
	}
	return t.readUser("create user", resp)
}
