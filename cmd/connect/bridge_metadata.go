package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/saml/sp"
)

// metadataRefreshEvery is how often `bridge serve` fetches its hubs' SAML
// metadata again. A hub's key rollover overlap (default 24 h or more) is many
// times longer, so a running bridge always picks up the next key before the
// hub signs with it.
const metadataRefreshEvery = 10 * time.Minute

// refreshHubMetadata re-pins the hubs' metadata now and then (see
// bridge.RefreshHubMetadata); refusals are logged and the pinned copy stays.
func refreshHubMetadata(ctx context.Context, r bridge.Records, log *slog.Logger, every time.Duration) {
	client := &http.Client{Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		res, err := bridge.RefreshHubMetadata(ctx, r, client, sp.VerifyMetadataUpdate)
		if err != nil {
			log.Warn("refresh hub metadata", "err", err)
		}
		for _, x := range res {
			switch {
			case x.Err != nil:
				log.Warn("hub metadata not refreshed; the pinned copy stays", "server", x.Server.ID, "hub", x.Server.Hub.HubURL, "err", x.Err)
			case x.Changed:
				log.Info("hub metadata refreshed", "server", x.Server.ID, "hub", x.Server.Hub.HubURL)
			}
		}
		t.Reset(every)
	}
}

// bridgeServersRefreshMetadata fetches the hubs' metadata now. --trust-new
// re-pins whatever the hub's metadata URL serves without the signature check
// (for a bridge that was down through a whole key rollover: the operator
// decides the URL is trustworthy).
func bridgeServersRefreshMetadata(c *cli.Context) error {
	s, _, err := adminBridge(c, false)
	if err != nil {
		return err
	}
	defer s.Close()
	verify := sp.VerifyMetadataUpdate
	if c.Bool("trust-new") {
		verify = func(_, _ []byte) error { return nil }
	}
	client := &http.Client{Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := bridge.RefreshHubMetadata(c.Context, s.records, client, verify)
	if err != nil {
		return err
	}
	failed := 0
	for _, x := range res {
		switch {
		case x.Err != nil:
			failed++
			fmt.Fprintf(c.App.Writer, "%s\t%s\tnot refreshed: %v\n", x.Server.ID, x.Server.Name, x.Err)
		case x.Changed:
			fmt.Fprintf(c.App.Writer, "%s\t%s\trefreshed\n", x.Server.ID, x.Server.Name)
		default:
			fmt.Fprintf(c.App.Writer, "%s\t%s\tunchanged\n", x.Server.ID, x.Server.Name)
		}
	}
	if failed > 0 {
		return fmt.Errorf("servers refresh-metadata: %d hub(s) not refreshed", failed)
	}
	return nil
}
