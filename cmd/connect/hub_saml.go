package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/connectsso/connect/internal/gctune"
	"github.com/connectsso/connect/saml/idp"
	"github.com/connectsso/connect/scim/hub"
	"github.com/connectsso/connect/scim/store"
)

// SAML flag names of `hub serve` (env CONNECT_HUB_SAML_KEY, …).
const (
	flagSAMLKey     = "saml-key"
	flagSAMLCert    = "saml-cert"
	flagSAMLSigning = "saml-signing"

	flagUpstreamMetadata = "upstream-metadata"
	flagUpstreamName     = "upstream-name"
	flagUpstreamMatch    = "upstream-match-attribute"
	flagUpstreamCreate   = "upstream-create-users"
	flagTrustedProxies   = "trusted-proxies"

	// Login limits (idp defaults: 5 failures in 15m lock an account for 15m;
	// 50 from one address block it; 60 anonymous starts at once, 20/s).
	flagLockoutFailures = "lockout-failures"
	flagLockoutWindow   = "lockout-window"
	flagLockoutDuration = "lockout-duration"
	flagAddressFailures = "address-failures"
	flagAddressWindow   = "address-window"
	flagAddressBlock    = "address-block"
	flagLoginStartRate  = "login-start-rate"
	flagLoginStartBurst = "login-start-burst"

	// GC tuning of the serving process (internal/gctune), on `hub serve`,
	// `bridge serve` and `bridge sync`, each with its own defaults.
	flagGCPercent   = "gc-percent"
	flagMemoryLimit = "memory-limit"
)

// gcFlags are --gc-percent and --memory-limit with a command's defaults.
func gcFlags(percent int, limit int64, env func(string) []string) []cli.Flag {
	return []cli.Flag{
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagGCPercent, Usage: "garbage collector GOGC of the process, or off (0: keep GOGC; a set GOGC wins over the default)", Value: strconv.Itoa(percent), EnvVars: env(flagGCPercent)}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagMemoryLimit, Usage: "soft memory limit of the process, e.g. 384MiB or 2GiB (0: keep GOMEMLIMIT; a set GOMEMLIMIT wins over the default)", Value: gctune.FormatMemoryLimit(limit), EnvVars: env(flagMemoryLimit)}),
	}
}

// loadGCSettings reads gcFlags: the runtime's own GOGC / GOMEMLIMIT, when
// set, win over the defaults but not over a flag given explicitly (on the
// command line, in its environment variable or the config file).
func loadGCSettings(c *cli.Context) (gctune.Settings, []error) {
	var g gctune.Settings
	var errs []error
	var err error
	if g.Percent, err = gctune.ParsePercent(c.String(flagGCPercent)); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", flagGCPercent, err))
	}
	if g.MemoryLimit, err = gctune.ParseMemoryLimit(c.String(flagMemoryLimit)); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", flagMemoryLimit, err))
	}
	if errs != nil {
		return gctune.Settings{}, errs
	}
	g = g.UnderEnv(c.IsSet(flagGCPercent), c.IsSet(flagMemoryLimit))
	if err := g.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%s, %s: %w", flagGCPercent, flagMemoryLimit, err))
	}
	return g, errs
}

func samlServeFlags() []cli.Flag {
	flags := []cli.Flag{
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagSAMLKey, Usage: "PEM private key the SAML IdP signs with (default: keys kept in the store, generated at first start)", EnvVars: hubEnv(flagSAMLKey), TakesFile: true}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagSAMLCert, Usage: "PEM certificate of --saml-key", EnvVars: hubEnv(flagSAMLCert), TakesFile: true}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagSAMLSigning, Usage: "algorithm of a generated SAML signing key: rsa (RSA-2048, RSA-SHA256) or ecdsa (P-256)", Value: "rsa", EnvVars: hubEnv(flagSAMLSigning)}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagUpstreamMetadata, Usage: "metadata URL or file of an enterprise SAML IdP the login page offers (the hub's SP metadata for it is at /saml/upstream/metadata)", EnvVars: hubEnv(flagUpstreamMetadata)}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagUpstreamName, Usage: "name of the enterprise IdP on the login page (\"Log in with NAME\")", EnvVars: hubEnv(flagUpstreamName)}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagUpstreamMatch, Usage: "asserted attribute that finds the hub user, ATTR[=FIELD] with FIELD email, userName, externalId or employeeNumber", Value: "email", EnvVars: hubEnv(flagUpstreamMatch)}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagTrustedProxies, Usage: "comma-separated addresses or CIDRs of reverse proxies whose X-Forwarded-For the login rate limits believe", EnvVars: hubEnv(flagTrustedProxies)}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: flagLockoutFailures, Usage: "failed logins of one account within --lockout-window that lock it", Value: 5, EnvVars: hubEnv(flagLockoutFailures)}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagLockoutWindow, Usage: "window in which an account's failed logins count (e.g. 15m)", Value: "15m", EnvVars: hubEnv(flagLockoutWindow)}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagLockoutDuration, Usage: "how long a locked account stays locked (\"connect hub users unlock\" ends it early)", Value: "15m", EnvVars: hubEnv(flagLockoutDuration)}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: flagAddressFailures, Usage: "failed logins from one address within --address-window that block it", Value: 50, EnvVars: hubEnv(flagAddressFailures)}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagAddressWindow, Usage: "window in which an address's failed logins count", Value: "15m", EnvVars: hubEnv(flagAddressWindow)}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagAddressBlock, Usage: "how long a blocked address stays blocked", Value: "15m", EnvVars: hubEnv(flagAddressBlock)}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagLoginStartRate, Usage: "SAML logins one address may start per second without a session (0: no limit)", Value: "20", EnvVars: hubEnv(flagLoginStartRate)}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: flagLoginStartBurst, Usage: "SAML logins one address may start at once without a session", Value: 60, EnvVars: hubEnv(flagLoginStartBurst)}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: flagUpstreamCreate, Usage: "create a hub user at the first upstream login when none matches", EnvVars: hubEnv(flagUpstreamCreate)}),
	}
	return append(flags, gcFlags(hub.DefaultGCPercent, hub.DefaultMemoryLimit, hubEnv)...)
}

// loadSAMLSettings reads the SAML flags (and key files).
func loadSAMLSettings(c *cli.Context) (hub.SAMLConfig, []error) {
	var errs []error
	cfg := hub.SAMLConfig{Algorithm: c.String(flagSAMLSigning), Upstream: hub.UpstreamConfig{
		Metadata:       c.String(flagUpstreamMetadata),
		Name:           c.String(flagUpstreamName),
		MatchAttribute: c.String(flagUpstreamMatch),
		CreateUsers:    c.Bool(flagUpstreamCreate),
	}}
	if _, err := idp.NormalizeAlgorithm(cfg.Algorithm); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", flagSAMLSigning, err))
	}
	gc, gcErrs := loadGCSettings(c)
	cfg.GC = hub.GCSettings(gc)
	errs = append(errs, gcErrs...)
	errs = append(errs, loadLoginLimits(c, &cfg)...)
	for _, p := range strings.Split(c.String(flagTrustedProxies), ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if !strings.Contains(p, "/") {
			if a, err := netip.ParseAddr(p); err == nil {
				cfg.TrustedProxies = append(cfg.TrustedProxies, netip.PrefixFrom(a, a.BitLen()))
				continue
			}
		}
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not an address or CIDR", flagTrustedProxies, p))
			continue
		}
		cfg.TrustedProxies = append(cfg.TrustedProxies, pfx.Masked())
	}
	keyPath, certPath := c.String(flagSAMLKey), c.String(flagSAMLCert)
	if (keyPath == "") != (certPath == "") {
		errs = append(errs, fmt.Errorf("--%s and --%s must be given together", flagSAMLKey, flagSAMLCert))
		return cfg, errs
	}
	if keyPath != "" {
		var err error
		if cfg.KeyPEM, err = os.ReadFile(keyPath); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", flagSAMLKey, err))
		}
		if cfg.CertPEM, err = os.ReadFile(certPath); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", flagSAMLCert, err))
		}
	}
	return cfg, errs
}

// loadLoginLimits reads the lockout and throttle flags into cfg.
func loadLoginLimits(c *cli.Context, cfg *hub.SAMLConfig) []error {
	var errs []error
	count := func(name string, dst *int) {
		if *dst = c.Int(name); *dst < 1 || *dst > 1_000_000 {
			errs = append(errs, fmt.Errorf("%s: %d is not a count from 1 to 1000000", name, *dst))
		}
	}
	dur := func(name string, dst *time.Duration) {
		d, err := hub.ParseDuration(c.String(name))
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		case d < time.Second || d > 30*24*time.Hour:
			errs = append(errs, fmt.Errorf("%s: %s is not between 1s and 30d", name, d))
		default:
			*dst = d
		}
	}
	count(flagLockoutFailures, &cfg.AccountLimit)
	dur(flagLockoutWindow, &cfg.AccountWindow)
	dur(flagLockoutDuration, &cfg.AccountLockout)
	count(flagAddressFailures, &cfg.AddressLimit)
	dur(flagAddressWindow, &cfg.AddressWindow)
	dur(flagAddressBlock, &cfg.AddressLockout)
	rate, err := strconv.ParseFloat(strings.TrimSpace(c.String(flagLoginStartRate)), 64)
	switch {
	case err != nil || rate < 0 || rate > 1e6 || rate != rate:
		errs = append(errs, fmt.Errorf("%s: %q is not a rate from 0 to 1000000 per second", flagLoginStartRate, c.String(flagLoginStartRate)))
	case rate == 0:
		cfg.StartRate = -1 // SAMLConfig: negative turns the throttle off
	default:
		cfg.StartRate = rate
		count(flagLoginStartBurst, &cfg.StartBurst)
	}
	return errs
}

func hubSPsCommand() *cli.Command {
	return &cli.Command{
		Name:  "sps",
		Usage: "SAML service providers the hub logs users in to",
		Subcommands: []*cli.Command{
			withConfigFile(&cli.Command{
				Name:  "add",
				Usage: "register an SP from its metadata; prints the entity ID",
				Flags: append(hubStoreFlags(),
					&cli.StringFlag{Name: "metadata", Usage: "metadata file or https URL (http only on loopback; redirects are refused)", Required: true},
					&cli.BoolFlag{Name: "replace", Usage: "replace the metadata of an SP already registered"}),
				Action: hubSPsAdd,
			}),
			withConfigFile(&cli.Command{
				Name:   "list",
				Usage:  "list registered SPs",
				Flags:  hubStoreFlags(),
				Action: hubSPsList,
			}),
			withConfigFile(&cli.Command{
				Name:      "remove",
				Usage:     "unregister an SP",
				ArgsUsage: "ENTITY_ID",
				Flags:     hubStoreFlags(),
				Action:    hubSPsRemove,
			}),
		},
	}
}

func hubSPsAdd(c *cli.Context) error {
	st, err := adminStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	client := &http.Client{Timeout: 30 * time.Second}
	id, err := hub.AddServiceProvider(c.Context, st, actor(), c.String("metadata"), client, c.Bool("replace"))
	if err != nil {
		return fmt.Errorf("sps add: %w", err)
	}
	_, err = fmt.Fprintln(c.App.Writer, id)
	return err
}

func hubSPsList(c *cli.Context) error {
	st, err := adminStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	sps, err := hub.ListServiceProviders(c.Context, st)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENTITY ID\tSOURCE\tCLIENT\tMODIFIED")
	for _, sp := range sps {
		client := sp.ClientID
		if client == "" {
			client = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", sp.EntityID, sp.Source, client, sp.Modified.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

func hubSPsRemove(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("sps remove: give one ENTITY_ID")
	}
	st, err := adminStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	err = hub.RemoveServiceProvider(c.Context, st, actor(), c.Args().First())
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("sps remove: no SP %q", c.Args().First())
	}
	return err
}

func hubUsersUnlockCommand() *cli.Command {
	return withConfigFile(&cli.Command{
		Name:      "unlock",
		Usage:     "clear a user's failed-login lockout",
		ArgsUsage: "USERNAME",
		Flags:     hubStoreFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("users unlock: give one USERNAME")
			}
			st, err := adminStore(c)
			if err != nil {
				return err
			}
			defer st.Close()
			err = hub.UnlockUser(c.Context, st, actor(), c.Args().First())
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("users unlock: no user %q", c.Args().First())
			}
			return err
		},
	})
}

func hubKeysCommand() *cli.Command {
	return &cli.Command{
		Name:  "keys",
		Usage: "SAML signing keys",
		Subcommands: []*cli.Command{
			withConfigFile(&cli.Command{
				Name:  "rotate",
				Usage: "publish a new signing key now; it starts signing after --overlap (on a hub without keys the first key signs at once)",
				Flags: append(hubStoreFlags(),
					&cli.StringFlag{Name: "overlap", Usage: "how long the new key is only published (e.g. 48h, 2d; at least the metadata's 24h cache time unless --force)", Value: "48h"},
					&cli.BoolFlag{Name: "force", Usage: "accept an overlap shorter than the 24h for which SPs may cache the metadata"},
					&cli.StringFlag{Name: "algorithm", Usage: "rsa or ecdsa", Value: "rsa"},
					&cli.StringFlag{Name: flagURL, Usage: "hub public URL (names the certificate)", EnvVars: hubEnv(flagURL)}),
				Action: hubKeysRotate,
			}),
			withConfigFile(&cli.Command{
				Name:   "list",
				Usage:  "list signing keys and when each signs",
				Flags:  hubStoreFlags(),
				Action: hubKeysList,
			}),
		},
	}
}

func hubKeysRotate(c *cli.Context) error {
	overlap, err := hub.ParseDuration(c.String("overlap"))
	if err != nil {
		return fmt.Errorf("keys rotate: --overlap: %w", err)
	}
	if overlap < idp.DefaultMetadataValidity && !c.Bool("force") {
		return fmt.Errorf("keys rotate: --overlap %s is shorter than the %s for which service providers may cache the hub's metadata (its cacheDuration): one that has not fetched it again would refuse logins signed by the new key; give a longer overlap, or --force", overlap, idp.DefaultMetadataValidity)
	}
	alg, err := idp.NormalizeAlgorithm(c.String("algorithm"))
	if err != nil {
		return fmt.Errorf("keys rotate: %w", err)
	}
	st, err := adminStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	k, err := hub.RotateSigningKey(c.Context, st, actor(), c.String(flagURL), alg, overlap, time.Now())
	if err != nil {
		return fmt.Errorf("keys rotate: %w", err)
	}
	if k.ActiveFrom.IsZero() {
		fmt.Fprintf(c.App.Writer, "key %s (%s) signs now: the hub had no signing key, so there was nothing to overlap with\n", k.ID, k.Algorithm)
		return nil
	}
	fmt.Fprintf(c.App.Writer, "key %s (%s) is published now and signs from %s\n", k.ID, k.Algorithm, k.ActiveFrom.UTC().Format(time.RFC3339))
	return nil
}

func hubKeysList(c *cli.Context) error {
	st, err := adminStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	keys, err := hub.SigningKeys(c.Context, st)
	if err != nil {
		return err
	}
	now := time.Now()
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tALGORITHM\tSIGNS FROM\tSTATE")
	for i, k := range keys {
		from := "first start"
		if !k.ActiveFrom.IsZero() {
			from = k.ActiveFrom.UTC().Format(time.RFC3339)
		}
		state := "retired"
		switch {
		case k.ActiveFrom.After(now):
			state = "next (published)"
		case i == len(keys)-1 || keys[i+1].ActiveFrom.After(now):
			state = "signing"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, k.Algorithm, from, state)
	}
	return tw.Flush()
}
