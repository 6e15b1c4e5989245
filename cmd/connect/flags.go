package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/connectsso/connect/scim/hub"
	"github.com/connectsso/connect/scim/store"
)

// Hub flag names; each has the environment variable CONNECT_HUB_<NAME> and the
// YAML key <name> in the --config file.
const (
	flagConfig    = "config"
	flagStore     = "store"
	flagListen    = "listen"
	flagURL       = "url"
	flagName      = "name"
	flagLogFormat = "log-format"
	flagLogLevel  = "log-level"
	flagRetention = "journal-retention"

	defaultHubStore = "sqlite:connect-hub.db"
)

func hubEnv(name string) []string {
	return []string{"CONNECT_HUB_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))}
}

// hubStoreFlags are the flags every hub command takes: admin commands open the same
// store as the server they administer.
func hubStoreFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagConfig, Usage: "YAML file with settings (keys are the flag names)", EnvVars: hubEnv(flagConfig), TakesFile: true},
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagStore, Usage: "directory store DSN: sqlite:PATH or postgres://…", Value: defaultHubStore, EnvVars: hubEnv(flagStore)}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagLogFormat, Usage: "log format: text or json", Value: "text", EnvVars: hubEnv(flagLogFormat)}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagLogLevel, Usage: "log level: debug, info, warn or error", Value: "info", EnvVars: hubEnv(flagLogLevel)}),
	}
}

// hubServeFlags are the flags of `hub serve` and `hub check-config`.
func hubServeFlags() []cli.Flag {
	return append(append(hubStoreFlags(),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagListen, Usage: "address to listen on (host:port; port 0 picks one)", Value: hub.DefaultListen, EnvVars: hubEnv(flagListen)}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagURL, Usage: "public base URL of the hub (default: http://LISTEN when listening on loopback)", EnvVars: hubEnv(flagURL)}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagName, Usage: "display name of the hub", Value: hub.DefaultName, EnvVars: hubEnv(flagName)}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "insecure-http", Usage: "accept a plain http:// --url on a host that is not loopback (passwords and cookies then travel in clear)", EnvVars: hubEnv("insecure-http")}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: flagRetention, Usage: "default change-journal retention (e.g. 7d, 72h); the hub setting journal-retention overrides it", Value: "7d", EnvVars: hubEnv(flagRetention)}),
	), samlServeFlags()...)
}

// withConfigFile makes a command read its altsrc flags from --config before acting.
func withConfigFile(cmd *cli.Command) *cli.Command {
	cmd.Before = altsrc.InitInputSourceWithContext(cmd.Flags, func(c *cli.Context) (altsrc.InputSourceContext, error) {
		path := c.String(flagConfig)
		if path == "" {
			return &altsrc.MapInputSource{}, nil
		}
		if strings.Contains(path, "://") {
			return nil, fmt.Errorf("--config %q: must be a local file", path)
		}
		src, err := altsrc.NewYamlSourceFromFile(path)
		if err != nil {
			return nil, fmt.Errorf("--config %s: %w", path, err)
		}
		return src, nil
	})
	return cmd
}

// newLogger builds the slog logger the flags ask for, writing to w.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var errs []error
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		errs = append(errs, fmt.Errorf("log-level %q: want debug, info, warn or error", level))
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch strings.ToLower(format) {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		errs = append(errs, fmt.Errorf("log-format %q: want text or json", format))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return slog.New(h), nil
}

// serveSettings are the flag values of `hub serve`, validated together.
type serveSettings struct {
	store, listen, url, name string
	insecureHTTP             bool
	retention                time.Duration
	log                      *slog.Logger
	saml                     hub.SAMLConfig
}

// loadServeSettings reads and checks every serve flag, reporting all problems at
// once. The store is not opened.
func loadServeSettings(c *cli.Context) (serveSettings, error) {
	var errs []error
	s := serveSettings{store: c.String(flagStore), listen: c.String(flagListen), url: c.String(flagURL), name: c.String(flagName),
		insecureHTTP: c.Bool("insecure-http")}
	log, err := newLogger(c.App.ErrWriter, c.String(flagLogFormat), c.String(flagLogLevel))
	if err != nil {
		errs = append(errs, err)
	}
	s.log = log
	if err := checkDSN(s.store); err != nil {
		errs = append(errs, err)
	}
	if d, err := hub.ParseDuration(c.String(flagRetention)); err != nil {
		errs = append(errs, fmt.Errorf("journal-retention: %w", err))
	} else {
		s.retention = d
	}
	if s.url == "" && isLoopback(s.listen) {
		s.url = "http://" + s.listen
	}
	var samlErrs []error
	s.saml, samlErrs = loadSAMLSettings(c)
	errs = append(errs, samlErrs...)
	// The hub's own checks (listen, url, …) too, so that every problem shows at
	// once; the store is opened later.
	if err := s.hubConfig(nil).Validate(); err != nil {
		for _, e := range unjoin(err) {
			if !errors.Is(e, hub.ErrNoStore) {
				errs = append(errs, e)
			}
		}
	}
	return s, errors.Join(errs...)
}

// hubConfig returns the hub configuration of these settings over st.
func (s serveSettings) hubConfig(st store.Store) hub.Config {
	return hub.Config{
		Name:             s.name,
		Listen:           s.listen,
		URL:              s.url,
		Store:            st,
		Logger:           s.log,
		Registry:         prometheus.NewRegistry(),
		JournalRetention: s.retention,
		Version:          version,
		SAML:             s.saml,
		InsecureHTTP:     s.insecureHTTP,
	}
}

// unjoin splits an errors.Join result into its errors.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func isLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// actor names the person running an admin command, for the audit log.
func actor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	if n := os.Getenv("USER"); n != "" {
		return "cli:" + n
	}
	return "cli"
}
