//go:build !linux

package hubproc

import (
	"os"
	"os/exec"
)

// Elsewhere a process neither dies with the test binary nor gets a group of
// its own.
func setProcAttr(*exec.Cmd, bool) {}

func signal(cmd *exec.Cmd, _ bool, sig os.Signal) { _ = cmd.Process.Signal(sig) }
