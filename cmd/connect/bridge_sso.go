package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/connectsso/connect/bridge"
	"github.com/connectsso/connect/bridge/sso"
	"github.com/connectsso/connect/saml/sp"
	"github.com/connectsso/connect/scim"
)

// SSO flags of `bridge serve` (env CONNECT_BRIDGE_SITE_NAME, …).
const (
	flagSiteName        = "site-name"
	flagInsecureHTTP    = "insecure-http"
	flagBridgeProxies   = "trusted-proxies"
	flagSessionIdle     = "session-idle"
	flagSessionLifetime = "session-lifetime"
)

func bridgeSSOFlags() []cli.Flag {
	return []cli.Flag{
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagSiteName, Usage: "the site's name on the login page (default: the host of --url)", EnvVars: bridgeEnv(flagSiteName)}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: flagInsecureHTTP, Usage: "accept a hub with a plain http:// URL that is not on loopback in the handshake", EnvVars: bridgeEnv(flagInsecureHTTP)}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagBridgeProxies, Usage: "comma-separated addresses or CIDRs of reverse proxies (nginx) whose X-Forwarded-For the local login throttle believes", EnvVars: bridgeEnv(flagBridgeProxies)}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: flagSessionIdle, Usage: "a session unused this long ends", Value: sp.DefaultSessionIdle, EnvVars: bridgeEnv(flagSessionIdle)}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: flagSessionLifetime, Usage: "every session ends this long after login", Value: sp.DefaultSessionLifetime, EnvVars: bridgeEnv(flagSessionLifetime)}),
	}
}

// newBridgeSSO builds the SSO handler of `bridge serve`: the SAML SP
// (/login, /saml/*, /logout, /connect/auth) and the handshake endpoints.
func newBridgeSSO(c *cli.Context, o bridgeOptions, s *bridgeStores, eng *bridge.Engine, reg prometheus.Registerer) (*sso.Bridge, error) {
	if err := sso.RecordURL(c.Context, s.records, o.url); err != nil {
		o.log.Warn("record the bridge URL (servers connect will need --url)", "err", err)
	}
	proxies, err := sso.ParseTrustedProxies(c.String(flagBridgeProxies))
	if err != nil {
		return nil, err
	}
	return sso.New(c.Context, sso.Config{
		BaseURL: o.url, SiteName: c.String(flagSiteName),
		Dir: s.dir, Records: s.records, State: s.state, Sync: eng,
		InsecureHTTP: c.Bool(flagInsecureHTTP), TrustedProxies: proxies,
		SessionIdle: c.Duration(flagSessionIdle), SessionLifetime: c.Duration(flagSessionLifetime),
		Logger: o.log, Registerer: reg,
	})
}

func bridgeServersConnectCommand() *cli.Command {
	return &cli.Command{Name: "connect",
		Usage: "make a setup secret for `connect hub clients add`; prints the Client URL and the secret",
		Flags: []cli.Flag{
			altsrc.NewStringFlag(&cli.StringFlag{Name: flagURL, Usage: "the bridge's public URL (default: the one \"bridge serve\" recorded)", EnvVars: bridgeEnv(flagURL)}),
			&cli.DurationFlag{Name: "ttl", Usage: "how long the secret stays usable", Value: bridge.DefaultSetupSecretTTL},
		},
		Action: bridgeServersConnect}
}

func bridgeServersConnect(c *cli.Context) error {
	if c.Duration("ttl") <= 0 {
		return errors.New("servers connect: --ttl must be positive")
	}
	s, _, err := adminBridge(c, false)
	if err != nil {
		return err
	}
	defer s.Close()
	u := strings.TrimRight(c.String(flagURL), "/")
	if u == "" {
		if u, err = sso.RecordedURL(c.Context, s.records); err != nil {
			return err
		}
	}
	if u == "" {
		return errors.New("servers connect: the bridge's URL is unknown: start `connect bridge serve` once on this store, or give --url")
	}
	if _, err := bridge.NormalizeSCIMURL(u); err != nil {
		return fmt.Errorf("servers connect: url: %w", err)
	}
	secret, err := bridge.NewSetupSecret(c.Context, s.records, c.Duration("ttl"), time.Now())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.App.Writer, "Client URL: %s\nSetup secret: %s\n", u, secret)
	return err
}

// removeHubServer is the part of `servers remove` that concerns a hub
// connected with the handshake: the hub is told (POST DisconnectPath with the
// bridge token, best effort: a hub that is gone must not block the removal)
// and the removal action is applied to the hub's accounts.
func removeHubServer(ctx context.Context, w io.Writer, log *slog.Logger, eng *bridge.Engine, srv bridge.Server) error {
	if srv.Hub != nil {
		if err := disconnectHub(ctx, srv); err != nil {
			log.Warn("the hub was not told", "server", srv.ID, "err", err)
			fmt.Fprintf(w, "warning: could not tell the hub %s (%v); remove the client there with `connect hub clients remove`\n", srv.Hub.HubURL, err)
		} else {
			fmt.Fprintf(w, "the hub %s removed this client and revoked its token\n", srv.Hub.HubURL)
		}
	}
	res, err := eng.RemoveServerAccounts(ctx, srv.ID)
	fmt.Fprintf(w, "accounts of %s: %s\n", srv.Name, res)
	return err
}

func disconnectHub(ctx context.Context, srv bridge.Server) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.Hub.HubURL+scim.DisconnectPath, bytes.NewReader(nil))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+srv.Token)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	switch resp.StatusCode {
	case http.StatusNoContent, http.StatusOK:
		return nil
	case http.StatusUnauthorized:
		return errors.New("the hub no longer knows this bridge's token (already removed there?)")
	}
	return fmt.Errorf("HTTP %d", resp.StatusCode)
}
