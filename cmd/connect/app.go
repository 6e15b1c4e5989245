package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/urfave/cli/v2"
)

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:                 "connect",
		Usage:                "single sign-on and user identity for a family of sites (SCIM 2.0 + SAML 2.0)",
		Version:              version,
		HideVersion:          true,
		Reader:               stdin,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: false,
		// Errors are printed once, by run; urfave's own handler would exit the process.
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			hubCommand(),
			bridgeCommand(),
			demoCommand(),
			{
				Name:  "version",
				Usage: "print the version",
				Action: func(c *cli.Context) error {
					_, err := fmt.Fprintf(c.App.Writer, "connect %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
					return err
				},
			},
		},
	}
}
