package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/connectsso/connect/scim/hub"
	"github.com/connectsso/connect/scim/password"
	"github.com/connectsso/connect/scim/store"
)

func hubCommand() *cli.Command {
	return &cli.Command{
		Name:  "hub",
		Usage: "run and administer the hub (directory, SCIM server)",
		Subcommands: []*cli.Command{
			withConfigFile(&cli.Command{
				Name:   "serve",
				Usage:  "run the hub",
				Flags:  hubServeFlags(),
				Action: hubServe,
			}),
			withConfigFile(&cli.Command{
				Name:   "check-config",
				Usage:  "validate the settings and reach the store without serving",
				Flags:  hubServeFlags(),
				Action: hubCheckConfig,
			}),
			withConfigFile(&cli.Command{
				Name:  "audit",
				Usage: "print the audit log, newest first (who changed what: CLI, SCIM tokens, logins that create users)",
				Flags: append(hubStoreFlags(),
					&cli.IntFlag{Name: "limit", Usage: "most entries to print (1–100000)", Value: 100}),
				Action: hubAudit,
			}),
			{
				Name:  "tokens",
				Usage: "SCIM admin tokens",
				Subcommands: []*cli.Command{
					withConfigFile(&cli.Command{
						Name:  "create",
						Usage: "mint a token; prints only the token",
						Flags: append(hubStoreFlags(),
							&cli.StringFlag{Name: "name", Usage: "token name (shown in tokens list and the audit log)"},
							&cli.BoolFlag{Name: "read-only", Usage: "token may only read"}),
						Action: hubTokensCreate,
					}),
					withConfigFile(&cli.Command{
						Name:   "list",
						Usage:  "list tokens (never their secrets)",
						Flags:  hubStoreFlags(),
						Action: hubTokensList,
					}),
					withConfigFile(&cli.Command{
						Name:      "revoke",
						Usage:     "revoke a token by id or name",
						ArgsUsage: "ID|NAME",
						Flags:     hubStoreFlags(),
						Action:    hubTokensRevoke,
					}),
				},
			},
			{
				Name:  "users",
				Usage: "hub users",
				Subcommands: []*cli.Command{
					withConfigFile(&cli.Command{
						Name:      "import",
						Usage:     "bulk load users from a CSV file whose header row names SCIM attributes",
						ArgsUsage: "FILE.csv",
						Flags: append(hubStoreFlags(),
							&cli.IntFlag{Name: "batch-size", Usage: "rows per transaction", Value: hub.DefaultImportBatch},
							&cli.BoolFlag{Name: "no-progress", Usage: "do not draw the progress bar"}),
						Action: hubUsersImport,
					}),
					withConfigFile(&cli.Command{
						Name:      "set-password",
						Usage:     "set a user's password, read from stdin (first line, at least 8 characters); prints nothing on success",
						ArgsUsage: "USERNAME",
						Flags:     hubStoreFlags(),
						Action:    hubUsersSetPassword,
					}),
					hubUsersUnlockCommand(),
				},
			},
			hubSPsCommand(),
			hubClientsCommand(),
			hubKeysCommand(),
			{
				Name:  "settings",
				Usage: "hub settings (" + settingKeys() + ")",
				Subcommands: []*cli.Command{
					withConfigFile(&cli.Command{
						Name:      "get",
						Usage:     "print settings (all, or the named ones)",
						ArgsUsage: "[KEY…]",
						Flags:     hubStoreFlags(),
						Action:    hubSettingsGet,
					}),
					withConfigFile(&cli.Command{
						Name:      "set",
						Usage:     "change settings; a running hub sees the change",
						ArgsUsage: "KEY=VALUE…",
						Flags:     hubStoreFlags(),
						Action:    hubSettingsSet,
					}),
				},
			},
		},
	}
}

func settingKeys() string {
	var keys []string
	for _, s := range hub.Settings() {
		keys = append(keys, s.Key)
	}
	return strings.Join(keys, ", ")
}

// adminStore opens the store of an admin command (logging to stderr).
func adminStore(c *cli.Context) (store.Store, error) {
	log, err := newLogger(c.App.ErrWriter, c.String(flagLogFormat), c.String(flagLogLevel))
	if err != nil {
		return nil, err
	}
	return openHubStore(c.Context, c.String(flagStore), log)
}

func hubServe(c *cli.Context) error {
	s, err := loadServeSettings(c)
	if err != nil {
		return err
	}
	// Listen before building the hub so that --listen host:0 works and the default
	// URL names the real port.
	ln, err := net.Listen("tcp", s.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	if c.String(flagURL) == "" && isLoopback(s.listen) {
		s.url = "http://" + ln.Addr().String()
	}
	st, err := openHubStore(c.Context, s.store, s.log)
	if err != nil {
		return err
	}
	defer st.Close()
	s.listen = ln.Addr().String()
	h, err := hub.New(s.hubConfig(st))
	if err != nil {
		return err
	}
	defer hub.TuneGC(s.saml.GC)()
	return h.Serve(c.Context, ln)
}

func hubCheckConfig(c *cli.Context) error {
	s, err := loadServeSettings(c)
	if err != nil {
		return err
	}
	st, err := openHubStore(c.Context, s.store, s.log)
	if err != nil {
		return err
	}
	defer st.Close()
	cfg := s.hubConfig(st)
	if err := cfg.Validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, 5*time.Second)
	defer cancel()
	if err := st.Ping(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	w := c.App.Writer
	fmt.Fprintln(w, "configuration OK")
	fmt.Fprintf(w, "  listen  %s\n  url     %s\n  name    %s\n  store   %s\n", cfg.Listen, cfg.URL, cfg.Name, redactDSN(s.store))
	return nil
}

func hubTokensCreate(c *cli.Context) error {
	name := strings.TrimSpace(c.String("name"))
	if name == "" {
		return errors.New("tokens create: --name is required")
	}
	st, err := adminStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	secret, _, err := hub.CreateToken(c.Context, st, actor(), name, c.Bool("read-only"))
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.App.Writer, secret)
	return err
}

func hubTokensList(c *cli.Context) error {
	st, err := adminStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	tokens, err := st.ListTokens(c.Context)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tREAD-ONLY\tCREATED\tLAST USED\tREVOKED")
	for _, t := range tokens {
		last := "never"
		if !t.LastUsed.IsZero() {
			last = t.LastUsed.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, yesNo(t.ReadOnly), t.Created.UTC().Format(time.RFC3339), last, yesNo(t.Revoked))
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func hubTokensRevoke(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("tokens revoke: give one token id or name")
	}
	st, err := adminStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	err = hub.RevokeToken(c.Context, st, actor(), c.Args().First())
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("tokens revoke: no token with id or name %q", c.Args().First())
	}
	return err
}

func hubSettingsGet(c *cli.Context) error {
	st, err := adminStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	keys := c.Args().Slice()
	if len(keys) == 0 {
		for _, s := range hub.Settings() {
			keys = append(keys, s.Key)
		}
	}
	for _, k := range keys {
		v, err := hub.GetSetting(c.Context, st, k)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "%s=%s\n", k, v)
	}
	return nil
}

func hubSettingsSet(c *cli.Context) error {
	if c.NArg() == 0 {
		return errors.New("settings set: give KEY=VALUE (keys: " + settingKeys() + ")")
	}
	// Check every argument before changing anything.
	type kv struct{ k, v string }
	var pairs []kv
	var errs []error
	for _, a := range c.Args().Slice() {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			errs = append(errs, fmt.Errorf("%q: want KEY=VALUE", a))
			continue
		}
		k = strings.TrimSpace(k)
		if _, err := hub.NormalizeSetting(k, v); err != nil {
			errs = append(errs, err)
			continue
		}
		pairs = append(pairs, kv{k, v})
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	st, err := adminStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, p := range pairs {
		if _, err := hub.SetSetting(c.Context, st, actor(), p.k, p.v); err != nil {
			return err
		}
	}
	return nil
}

func hubUsersImport(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("users import: give one CSV file")
	}
	path := c.Args().First()
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rows, err := countRows(f)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	st, err := adminStore(c)
	if err != nil {
		return err
	}
	defer st.Close()

	var bar *progressbar.ProgressBar
	if !c.Bool("no-progress") {
		bar = progressbar.NewOptions(rows,
			progressbar.OptionSetWriter(c.App.ErrWriter),
			progressbar.OptionSetDescription("importing users"),
			progressbar.OptionShowCount(),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(c.App.ErrWriter) }),
		)
	}
	res, err := hub.ImportUsers(c.Context, st, f, hub.ImportOptions{
		Actor:        actor(),
		Source:       path,
		BatchSize:    c.Int("batch-size"),
		HashPassword: password.Hash,
		Progress: func(done int) {
			if bar != nil {
				_ = bar.Set(min(done, rows))
			}
		},
	})
	if bar != nil {
		_ = bar.Finish()
	}
	for _, e := range res.Errors {
		fmt.Fprintln(c.App.ErrWriter, e.Error())
	}
	if errors.Is(err, hub.ErrImportHeader) {
		return fmt.Errorf("import %s: %w", path, err)
	}
	if err != nil {
		return fmt.Errorf("import %s: %w (imported %d, failed %d before stopping)", path, err, res.Imported, res.Failed)
	}
	fmt.Fprintf(c.App.Writer, "imported %d, failed %d\n", res.Imported, res.Failed)
	if res.Failed > 0 {
		return cli.Exit("", 1)
	}
	return nil
}

// countRows counts the data rows (lines after the header) for the progress bar.
func countRows(r io.Reader) (int, error) {
	buf := make([]byte, 64<<10)
	lines, last := 0, byte('\n')
	for {
		n, err := r.Read(buf)
		for _, b := range buf[:n] {
			if b == '\n' {
				lines++
			}
		}
		if n > 0 {
			last = buf[n-1]
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if last != '\n' {
		lines++
	}
	return max(lines-1, 0), nil
}

func hubAudit(c *cli.Context) error {
	limit := c.Int("limit")
	if limit < 1 || limit > 100_000 {
		return fmt.Errorf("audit: --limit %d: want 1 to 100000", limit)
	}
	st, err := adminStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	entries, err := st.AuditLog(c.Context, limit)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTOR\tACTION\tTARGET\tDETAIL")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.At.UTC().Format(time.RFC3339), printable(e.Actor), printable(e.Action), printable(e.Target), printable(e.Detail))
	}
	return tw.Flush()
}

// printable replaces control characters (a stored value may come from a
// SCIM client) so a terminal prints them as text, never as escapes.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}

// minPasswordLength is the shortest password an administrator may set.
const minPasswordLength = 8

func hubUsersSetPassword(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("users set-password: give one USERNAME")
	}
	pw, err := readPassword(c.App.Reader, c.App.ErrWriter)
	if err != nil {
		return fmt.Errorf("users set-password: %w", err)
	}
	if n := utf8.RuneCountInString(pw); n > 0 && n < minPasswordLength {
		return fmt.Errorf("users set-password: the password has %d characters; give at least %d (OWASP ASVS 2.1.1)", n, minPasswordLength)
	}
	hash, err := password.Hash(pw)
	if err != nil {
		return fmt.Errorf("users set-password: %w", err)
	}
	st, err := adminStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	err = hub.SetPasswordHash(c.Context, st, actor(), c.Args().First(), hash)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("users set-password: no user %q", c.Args().First())
	}
	return err
}

// readPassword reads the first line of r; from a terminal it prompts on w and
// does not echo.
func readPassword(r io.Reader, w io.Writer) (string, error) {
	if f, ok := r.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(w, "Password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(w)
		if err != nil {
			return "", err
		}
		return string(b), nil
	}
	line, err := bufio.NewReader(io.LimitReader(r, password.MaxLength+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", errors.New("no password on stdin")
	}
	return line, nil
}
