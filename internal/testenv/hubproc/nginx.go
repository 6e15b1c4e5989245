package hubproc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/connectsso/connect/internal/testenv"
)

// NginxOptions tune StartNginx.
type NginxOptions struct {
	// Includes is the folder of the shipped connect-locations.conf and
	// connect-proxy.conf (deploy/nginx).
	Includes string
	// Port is the loopback port nginx listens on.
	Port int
	// Bridge and Site are the host:port of the two upstreams.
	Bridge, Site string
	// Server holds more directives of the server block.
	Server string
}

// StartNginx renders the shipped location and proxy includes into a temporary
// prefix with the two upstreams and a listener, and runs nginx in the
// foreground until the test ends. A missing nginx skips tb (testenv.Missing).
func StartNginx(tb testing.TB, o NginxOptions) {
	tb.Helper()
	bin := "/usr/sbin/nginx" // Debian's, when /usr/sbin is not on PATH
	if _, err := os.Stat(bin); err != nil {
		bin = testenv.Binary(tb, "nginx")
	}
	dir := tb.TempDir()
	for _, f := range []string{"connect-locations.conf", "connect-proxy.conf"} {
		b, err := os.ReadFile(filepath.Join(o.Includes, f))
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers must read and write the temporary prefix
	}
	conf := fmt.Sprintf(`%s
worker_processes 1;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log info;
events { worker_connections 256; }
http {
    access_log %[2]s/access.log;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    upstream connect_bridge { server %[3]s; keepalive 8; }
    upstream connect_site { server %[4]s; keepalive 8; }
    server {
        listen 127.0.0.1:%[5]d;
        server_name localhost;
        %[6]s
        include connect-locations.conf;
    }
}
`, user, dir, o.Bridge, o.Site, o.Port, o.Server)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		tb.Fatal(err)
	}
	errLog := filepath.Join(dir, "error.log")
	if out, err := exec.Command(bin, "-t", "-p", dir, "-c", confPath, "-e", errLog).CombinedOutput(); err != nil {
		tb.Fatalf("nginx -t: %v\n%s", err, out)
	}
	// No stdio: everything goes to error.log, and no nginx process can hold
	// the test binary's output open. SIGTERM: the master stops its worker
	// before it exits (a SIGKILL would orphan the worker).
	Start(tb, "nginx", exec.Command(bin, "-p", dir, "-c", confPath, "-e", errLog), Options{Stop: syscall.SIGTERM, LogFile: errLog})
	WaitListening(tb, fmt.Sprintf("127.0.0.1:%d", o.Port), 10*time.Second)
}
