package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/hub"
	"github.com/connectsso/connect/scim/password"
	"github.com/connectsso/connect/scim/store"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run a hub with sample data on loopback (temporary SQLite store) until Ctrl-C",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Usage: "loopback address (falls back to a free port when taken)", Value: "127.0.0.1:8080"},
			&cli.StringFlag{Name: flagLogLevel, Value: "info", Usage: "log level"},
		},
		Action: demo,
	}
}

// demoUser is one sample person; everyone's password is demoPassword.
type demoUser struct {
	userName, given, family, employee, dept string
	audiences                               []string
	course                                  bool
}

const demoPassword = "demo-password"

var demoUsers = []demoUser{
	{"alice", "Alice", "Archer", "E1001", "Teaching", []string{"Staff"}, true},
	{"bob", "Bob", "Baker", "E1002", "Teaching", []string{"Staff"}, false},
	{"carol", "Carol", "Chen", "S2001", "", []string{"Students"}, true},
	{"dave", "Dave", "Diaz", "S2002", "", []string{"Students"}, true},
	{"erin", "Erin", "Evans", "S2003", "", []string{"Students"}, false},
	{"frank", "Frank", "Fischer", "E1003", "Administration", []string{"Staff", "Students"}, false},
}

func demo(c *cli.Context) error {
	if !isLoopback(c.String("listen")) {
		return fmt.Errorf("demo: --listen %q is not a loopback address", c.String("listen"))
	}
	log, err := newLogger(c.App.ErrWriter, "text", c.String(flagLogLevel))
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "connect-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	ln, err := net.Listen("tcp", c.String("listen"))
	if errors.Is(err, syscall.EADDRINUSE) {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		return fmt.Errorf("demo: listen: %w", err)
	}
	defer ln.Close()
	url := "http://" + ln.Addr().String()

	dsn := "sqlite:" + filepath.Join(dir, "hub.db")
	st, err := openHubStore(c.Context, dsn, log)
	if err != nil {
		return err
	}
	defer st.Close()
	token, err := seedDemo(c.Context, st)
	if err != nil {
		return fmt.Errorf("demo: sample data: %w", err)
	}
	h, err := hub.New(hub.Config{
		Name: "Connect demo hub", Listen: ln.Addr().String(), URL: url,
		Store: st, Logger: log, Registry: prometheus.NewRegistry(), Version: version,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, `
Connect demo hub
  URL         %[1]s
  SCIM        %[1]s/scim/v2
  metrics     %[1]s/metrics
  admin token %[2]s
  store       %[3]s (deleted on exit)
  users       alice bob carol dave erin frank (password %[4]q)
  groups      Staff, Students (audiences), Safety induction (course)

Try:
  curl -s -H 'Authorization: Bearer %[2]s' '%[1]s/scim/v2/Users?filter=userName%%20eq%%20%%22alice%%22'
  curl -s -H 'Authorization: Bearer %[2]s' '%[1]s/scim/v2/Groups?attributes=displayName'
  curl -s -H 'Authorization: Bearer %[2]s' -H 'Content-Type: application/scim+json' \
       -d '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"grace"}' %[1]s/scim/v2/Users
  curl -s -H 'Authorization: Bearer %[2]s' '%[1]s/scim/v2/Changes'

Press Ctrl-C to stop.
`, url, token, dsn, demoPassword)
	return h.Serve(c.Context, ln)
}

// seedDemo loads the sample directory through the store and mints an admin token.
func seedDemo(ctx context.Context, st store.Store) (string, error) {
	token, _, err := hub.CreateToken(ctx, st, "demo", "demo-admin", false)
	if err != nil {
		return "", err
	}
	hash, err := password.Hash(demoPassword)
	if err != nil {
		return "", err
	}
	members := map[string][]scim.Member{}
	var course []scim.Member
	for _, d := range demoUsers {
		u := scim.User{
			UserName:    d.userName,
			DisplayName: d.given + " " + d.family,
			Name:        &scim.Name{GivenName: d.given, FamilyName: d.family},
			Emails:      []scim.MultiValue{{Value: d.userName + "@example.org", Type: "work", Primary: true}},
			Active:      scim.BoolPtr(true),
			Enterprise:  &scim.EnterpriseUser{EmployeeNumber: d.employee, Department: d.dept},
			Connect:     &scim.ConnectUser{PasswordHash: hash, EmailVerified: scim.BoolPtr(true)},
		}
		u.SetSchemas()
		created, err := st.CreateUser(ctx, u)
		if err != nil {
			return "", fmt.Errorf("user %s: %w", d.userName, err)
		}
		m := scim.Member{Value: created.ID, Display: created.DisplayName, Type: "User"}
		for _, a := range d.audiences {
			members[a] = append(members[a], m)
		}
		if d.course {
			course = append(course, m)
		}
	}
	groups := []scim.Group{
		{DisplayName: "Staff", Members: members["Staff"], Connect: &scim.ConnectGroup{Kind: scim.KindAudience}},
		{DisplayName: "Students", Members: members["Students"], Connect: &scim.ConnectGroup{Kind: scim.KindAudience}},
		{DisplayName: "Safety induction", Members: course, Connect: &scim.ConnectGroup{Kind: scim.KindCourse}},
	}
	for _, g := range groups {
		g.SetSchemas()
		if _, err := st.CreateGroup(ctx, g); err != nil {
			return "", fmt.Errorf("group %s: %w", g.DisplayName, err)
		}
	}
	return token, nil
}
