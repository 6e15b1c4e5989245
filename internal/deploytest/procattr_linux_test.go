package deploytest

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes a child process die with the test binary, so that a
// killed test run leaves no hub behind.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
