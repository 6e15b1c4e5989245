package main

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes a child process die with the test binary, even when a test
// timeout panics before cleanups run.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
