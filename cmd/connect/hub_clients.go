package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/connectsso/connect/scim/hub"
	"github.com/connectsso/connect/scim/store"
)

// `connect hub clients …`: client systems (DESIGN.md §2.1, §4, §5).

func clientOptionFlags(add bool) []cli.Flag {
	fs := []cli.Flag{
		&cli.StringFlag{Name: "name", Usage: "client name"},
		&cli.StringFlag{Name: "restrict-audience", Usage: "only members of this audience (name or id) are synced and may log in; \"\" for everyone"},
		&cli.BoolFlag{Name: "add-new-audiences", Usage: "sync every audience created from now on"},
		&cli.BoolFlag{Name: "add-new-courses", Usage: "sync every course created from now on"},
		&cli.StringSliceFlag{Name: "audience", Usage: "a synchronised audience (name or id; repeat)"},
		&cli.StringSliceFlag{Name: "course", Usage: "a synchronised course (name or id; repeat)"},
		&cli.StringFlag{Name: "comment", Usage: "free text"},
	}
	if add {
		fs = append(fs,
			&cli.StringFlag{Name: "url", Usage: "the bridge's Client URL (printed by \"connect bridge servers connect\")"},
			&cli.StringFlag{Name: "secret", Usage: "the bridge's setup secret (printed by \"connect bridge servers connect\"); \"-\" reads it from stdin", EnvVars: hubEnv("client-secret")},
			&cli.StringFlag{Name: "hub-url", Usage: "this hub's public URL (default: the one \"hub serve\" recorded in the store)"},
			&cli.StringFlag{Name: "hub-name", Usage: "this hub's display name (default: the one \"hub serve\" recorded)"},
			&cli.BoolFlag{Name: "insecure-http", Usage: "allow a plain http:// Client URL that is not on loopback"},
		)
	}
	return append(hubStoreFlags(), fs...)
}

func hubClientsCommand() *cli.Command {
	return &cli.Command{
		Name:  "clients",
		Usage: "client systems: the bridges connected to this hub and what each may see",
		Subcommands: []*cli.Command{
			withConfigFile(&cli.Command{
				Name:   "add",
				Usage:  "connect a bridge (the setup-secret handshake); prints the client id",
				Flags:  clientOptionFlags(true),
				Action: hubClientsAdd,
			}),
			withConfigFile(&cli.Command{
				Name:   "list",
				Usage:  "list client systems",
				Flags:  append(hubStoreFlags(), &cli.BoolFlag{Name: "json", Usage: "print JSON"}),
				Action: hubClientsList,
			}),
			withConfigFile(&cli.Command{
				Name:      "show",
				Usage:     "show one client system",
				ArgsUsage: "ID_OR_NAME",
				Flags:     append(hubStoreFlags(), &cli.BoolFlag{Name: "json", Usage: "print JSON"}),
				Action:    hubClientsShow,
			}),
			withConfigFile(&cli.Command{
				Name:      "update",
				Usage:     "change options (a scope change makes the bridge resync)",
				ArgsUsage: "ID_OR_NAME",
				Flags:     clientOptionFlags(false),
				Action:    hubClientsUpdate,
			}),
			withConfigFile(&cli.Command{
				Name:      "remove",
				Usage:     "remove a client system: its token stops working and its SAML SP is unregistered",
				ArgsUsage: "ID_OR_NAME",
				Flags:     hubStoreFlags(),
				Action:    hubClientsRemove,
			}),
			withConfigFile(&cli.Command{
				Name:      "rotate-token",
				Usage:     "replace the client's bridge token; prints the new token alone",
				ArgsUsage: "ID_OR_NAME",
				Flags:     hubStoreFlags(),
				Action:    hubClientsRotate,
			}),
		},
	}
}

func hubClientsAdd(c *cli.Context) error {
	var err error
	var missing []string
	for _, f := range []string{"name", "url", "secret"} {
		if strings.TrimSpace(c.String(f)) == "" {
			missing = append(missing, "--"+f)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("clients add: %s required", strings.Join(missing, ", "))
	}
	secret := c.String("secret")
	if secret == "-" {
		// Off the command line: a secret in argv shows in ps and shell history.
		if secret, err = readPassword(c.App.Reader, c.App.ErrWriter); err != nil {
			return fmt.Errorf("clients add: read the setup secret: %w", err)
		}
	}
	st, err := adminStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	hubURL, hubName, err := hub.PublicIdentity(c.Context, st)
	if err != nil {
		return err
	}
	if v := c.String("hub-url"); v != "" {
		hubURL = v
	}
	if v := c.String("hub-name"); v != "" {
		hubName = v
	}
	if hubURL == "" {
		return errors.New("clients add: this hub's public URL is unknown: start `connect hub serve` once on this store, or give --hub-url")
	}
	if hubName == "" {
		hubName = hub.DefaultName
	}
	cl, err := hub.AddClient(c.Context, st, hub.Connect{HubURL: hubURL, HubName: hubName, Actor: actor(), InsecureHTTP: c.Bool("insecure-http")},
		c.String("url"), secret, clientOptions(c))
	if err != nil {
		return fmt.Errorf("clients add: %w", err)
	}
	_, err = fmt.Fprintln(c.App.Writer, cl.ID)
	return err
}

func clientOptions(c *cli.Context) hub.ClientOptions {
	return hub.ClientOptions{
		Name:             c.String("name"),
		RestrictAudience: c.String("restrict-audience"),
		AddNewAudiences:  c.Bool("add-new-audiences"),
		AddNewCourses:    c.Bool("add-new-courses"),
		Audiences:        c.StringSlice("audience"),
		Courses:          c.StringSlice("course"),
		Comment:          c.String("comment"),
	}
}

// clientView is a client as `clients list/show --json` prints it, with group
// names beside the ids.
type clientView struct {
	ID               string    `json:"id"`
	Name             string    `json:"name"`
	URL              string    `json:"url"`
	EntityID         string    `json:"entityId"`
	RestrictAudience string    `json:"restrictAudience"`
	AddNewAudiences  bool      `json:"addNewAudiences"`
	AddNewCourses    bool      `json:"addNewCourses"`
	Audiences        []string  `json:"audiences"`
	Courses          []string  `json:"courses"`
	Comment          string    `json:"comment"`
	ScopeVersion     int64     `json:"scopeVersion"`
	Created          time.Time `json:"created"`
	Modified         time.Time `json:"modified"`
}

func viewClient(c *cli.Context, st store.Store, cl store.Client) clientView {
	v := clientView{ID: cl.ID, Name: cl.Name, URL: cl.URL, EntityID: cl.EntityID, AddNewAudiences: cl.AddNewAudiences,
		AddNewCourses: cl.AddNewCourses, Comment: cl.Comment, ScopeVersion: cl.ScopeVersion, Created: cl.Created, Modified: cl.Modified,
		Audiences: []string{}, Courses: []string{}}
	name := func(id string) (string, string) {
		g, err := st.GetGroup(c.Context, id, false)
		if err != nil {
			return id, ""
		}
		return g.DisplayName, g.Kind()
	}
	if cl.RestrictAudience != "" {
		v.RestrictAudience, _ = name(cl.RestrictAudience)
	}
	for _, id := range cl.Groups {
		n, kind := name(id)
		if kind == "course" {
			v.Courses = append(v.Courses, n)
		} else {
			v.Audiences = append(v.Audiences, n)
		}
	}
	return v
}

func hubClientsList(c *cli.Context) error {
	st, err := adminStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	cs, ok := st.(store.Clients)
	if !ok {
		return hub.ErrNoClientStore
	}
	all, err := cs.ListClients(c.Context)
	if err != nil {
		return err
	}
	views := make([]clientView, 0, len(all))
	for _, cl := range all {
		views = append(views, viewClient(c, st, cl))
	}
	if c.Bool("json") {
		return printJSON(c, views)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tURL\tRESTRICT AUDIENCE\tAUDIENCES\tCOURSES")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.ID, v.Name, v.URL, orDash(v.RestrictAudience), orDash(strings.Join(v.Audiences, ", ")), orDash(strings.Join(v.Courses, ", ")))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printJSON(c *cli.Context, v any) error {
	enc := json.NewEncoder(c.App.Writer)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func oneArg(c *cli.Context, cmd string) (string, error) {
	if c.NArg() != 1 {
		return "", fmt.Errorf("%s: give one client id or name", cmd)
	}
	return c.Args().First(), nil
}

func hubClientsShow(c *cli.Context) error {
	ref, err := oneArg(c, "clients show")
	if err != nil {
		return err
	}
	st, err := adminStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	cl, err := hub.FindClient(c.Context, st, ref)
	if err != nil {
		return fmt.Errorf("clients show: %w", err)
	}
	v := viewClient(c, st, cl)
	if c.Bool("json") {
		return printJSON(c, v)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	for _, row := range [][2]string{
		{"id", v.ID}, {"name", v.Name}, {"client URL", v.URL}, {"SAML entity", orDash(v.EntityID)},
		{"restrict to audience", orDash(v.RestrictAudience)}, {"add new audiences", yesNo(v.AddNewAudiences)},
		{"add new courses", yesNo(v.AddNewCourses)}, {"synchronised audiences", orDash(strings.Join(v.Audiences, ", "))},
		{"synchronised courses", orDash(strings.Join(v.Courses, ", "))}, {"comment", orDash(v.Comment)},
		{"scope version", fmt.Sprint(v.ScopeVersion)}, {"created", v.Created.UTC().Format(time.RFC3339)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
	}
	return tw.Flush()
}

func hubClientsUpdate(c *cli.Context) error {
	ref, err := oneArg(c, "clients update")
	if err != nil {
		return err
	}
	var u hub.ClientUpdate
	str := func(name string) *string {
		if !c.IsSet(name) {
			return nil
		}
		v := c.String(name)
		return &v
	}
	boolean := func(name string) *bool {
		if !c.IsSet(name) {
			return nil
		}
		v := c.Bool(name)
		return &v
	}
	list := func(name string) *[]string {
		if !c.IsSet(name) {
			return nil
		}
		v := c.StringSlice(name)
		return &v
	}
	u.Name, u.RestrictAudience, u.Comment = str("name"), str("restrict-audience"), str("comment")
	u.AddNewAudiences, u.AddNewCourses = boolean("add-new-audiences"), boolean("add-new-courses")
	u.Audiences, u.Courses = list("audience"), list("course")
	st, err := adminStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := hub.UpdateClient(c.Context, st, actor(), ref, u); err != nil {
		return fmt.Errorf("clients update: %w", err)
	}
	return nil
}

func hubClientsRemove(c *cli.Context) error {
	ref, err := oneArg(c, "clients remove")
	if err != nil {
		return err
	}
	st, err := adminStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := hub.RemoveClient(c.Context, st, hub.Connect{Actor: actor()}, ref); err != nil {
		return fmt.Errorf("clients remove: %w", err)
	}
	return nil
}

func hubClientsRotate(c *cli.Context) error {
	ref, err := oneArg(c, "clients rotate-token")
	if err != nil {
		return err
	}
	st, err := adminStore(c)
	if err != nil {
		return err
	}
	defer st.Close()
	tok, err := hub.RotateClientToken(c.Context, st, actor(), ref)
	if err != nil {
		return fmt.Errorf("clients rotate-token: %w", err)
	}
	_, err = fmt.Fprintln(c.App.Writer, tok)
	return err
}
