package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/client"
)

// userAttributes are the attributes the engine asks for: the default set plus
// the Connect passwordHash, which a hub returns only when named (and only when
// its sync-password-hashes setting allows).
var userAttributes = []string{
	"id", "userName", "name", "displayName", "preferredLanguage", "locale", "timezone",
	"active", "emails", "phoneNumbers", "addresses", "title", "groups", "meta",
	scim.SchemaEnterpriseUser,
	scim.SchemaConnectUser + ":interests",
	scim.SchemaConnectUser + ":customFields",
	scim.SchemaConnectUser + ":emailVerified",
	scim.SchemaConnectUser + ":passwordHash",
}

// SCIMSource reads a SCIM 2.0 server through scim/client. Against the Connect
// hub it also offers the Changes feed; against a plain server the feed probe
// fails with ErrNoFeed and the engine falls back to meta.lastModified
// increments.
type SCIMSource struct {
	c *client.Client
}

// The abilities SCIMSource offers.
var (
	_ Source         = (*SCIMSource)(nil)
	_ ChangeFeed     = (*SCIMSource)(nil)
	_ ModifiedLister = (*SCIMSource)(nil)
)

// NewSCIMSource returns a source over c.
func NewSCIMSource(c *client.Client) *SCIMSource { return &SCIMSource{c: c} }

// sourceErr maps client errors to the engine's sentinels, keeping the cause.
func sourceErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, client.ErrShortPage), errors.Is(err, client.ErrInconsistentPage):
		return fmt.Errorf("%w: %w", ErrIncomplete, err)
	case errors.Is(err, client.ErrNoChangesFeed):
		return fmt.Errorf("%w: %w", ErrNoFeed, err)
	case errors.Is(err, client.ErrExpiredCursor):
		return fmt.Errorf("%w: %w", ErrExpiredCursor, err)
	case errors.Is(err, client.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrGone, err)
	}
	return err
}

// listErr marks any failure of a listing as incomplete (a 500 after retries, a
// timeout): the listing did not finish.
func listErr(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	err = sourceErr(err)
	if !errors.Is(err, ErrIncomplete) {
		err = fmt.Errorf("%w: %w", ErrIncomplete, err)
	}
	return err
}

// ListUsers implements Source. The next page is fetched while fn works on
// this one.
func (s *SCIMSource) ListUsers(ctx context.Context, fn func([]scim.User) error) error {
	return prefetch(ctx, func(ctx context.Context, put func([]scim.User) error) error {
		_, err := s.c.ListUsers(ctx, client.ListOptions{Attributes: userAttributes}, put)
		return listErr(err)
	}, fn)
}

// ListUsersModifiedSince implements ModifiedLister.
func (s *SCIMSource) ListUsersModifiedSince(ctx context.Context, since time.Time, fn func([]scim.User) error) error {
	return prefetch(ctx, func(ctx context.Context, put func([]scim.User) error) error {
		_, err := s.c.ListUsers(ctx, client.ListOptions{Attributes: userAttributes, Filter: client.ModifiedSince(since)}, put)
		return listErr(err)
	}, fn)
}

// ListGroups implements Source.
func (s *SCIMSource) ListGroups(ctx context.Context, fn func([]scim.Group) error) error {
	_, err := s.c.ListGroups(ctx, client.ListOptions{ExcludedAttributes: []string{"members"}}, fn)
	return listErr(err)
}

// prefetch runs list in a goroutine one page ahead of fn: fetching page k+1
// overlaps applying page k, so a sync costs about the larger of the two
// instead of their sum. At most two pages are held. Pages reach fn in order;
// fn's error stops the listing and is returned; a listing error is returned
// after fn has seen every page before it.
func prefetch[T any](ctx context.Context, list func(context.Context, func([]T) error) error, fn func([]T) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan []T, 1)
	done := make(chan error, 1)
	go func() {
		err := list(ctx, func(p []T) error {
			select {
			case pages <- p:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		close(pages)
		done <- err
	}()
	for p := range pages {
		if err := fn(p); err != nil {
			cancel()
			for range pages { // let the producer finish
			}
			<-done
			return err
		}
	}
	return <-done
}

// GetUser implements Source.
func (s *SCIMSource) GetUser(ctx context.Context, id string) (scim.User, error) {
	u, err := s.c.GetUser(ctx, id, userAttributes...)
	return u, sourceErr(err)
}

// GroupMembers implements Source.
func (s *SCIMSource) GroupMembers(ctx context.Context, id string) ([]string, error) {
	g, err := s.c.GetGroup(ctx, id, true)
	if err != nil {
		return nil, sourceErr(err)
	}
	ids := make([]string, 0, len(g.Members))
	for _, m := range g.Members {
		if m.Type != "" && m.Type != "User" {
			continue // nested groups are not members of the local group
		}
		if m.Value != "" {
			ids = append(ids, m.Value)
		}
	}
	return ids, nil
}

// Changes implements ChangeFeed.
func (s *SCIMSource) Changes(ctx context.Context, cursor string, count int, wait time.Duration) (client.ChangesPage, error) {
	p, err := s.c.Changes(ctx, cursor, count, wait)
	return p, sourceErr(err)
}

// GetGroup returns one group without its members. ErrGone when the source has
// none.
func (s *SCIMSource) GetGroup(ctx context.Context, id string) (scim.Group, error) {
	g, err := s.c.GetGroup(ctx, id, false)
	return g, sourceErr(err)
}

// CountUsers returns how many users the source serves (for progress bars).
func (s *SCIMSource) CountUsers(ctx context.Context) (int, error) {
	return s.c.Count(ctx, "Users", "")
}
