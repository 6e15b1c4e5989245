package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/connectsso/connect/bridge"
)

// bridgeServersSetToken stores a new token for a server, read from stdin so it
// never appears in argv or shell history.
func bridgeServersSetToken(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("servers set-token: give one server id or name")
	}
	tok, err := readPassword(c.App.Reader, c.App.ErrWriter)
	if err != nil {
		return fmt.Errorf("servers set-token: read the token: %w", err)
	}
	s, _, err := adminBridge(c, false)
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := bridge.SetServerToken(c.Context, s.records, c.Args().First(), tok); err != nil {
		return fmt.Errorf("servers set-token: %w", err)
	}
	return nil
}
