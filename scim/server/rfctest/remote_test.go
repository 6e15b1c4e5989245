package rfctest

import (
	"os"
	"testing"
)

// TestRemote runs the suite against a running service provider:
//
//	CONNECT_SCIM_URL=http://127.0.0.1:8080/scim/v2 CONNECT_SCIM_TOKEN=… \
//	  [CONNECT_SCIM_READONLY_TOKEN=…] go test ./scim/server/rfctest -run TestRemote -v
func TestRemote(t *testing.T) {
	base, token := os.Getenv("CONNECT_SCIM_URL"), os.Getenv("CONNECT_SCIM_TOKEN")
	if base == "" || token == "" {
		t.Skip("set CONNECT_SCIM_URL and CONNECT_SCIM_TOKEN to run the suite against a running hub")
	}
	Run(t, Target{
		BaseURL:       base,
		Token:         token,
		ReadOnlyToken: os.Getenv("CONNECT_SCIM_READONLY_TOKEN"),
		HashesVisible: os.Getenv("CONNECT_SCIM_HASHES_VISIBLE") == "1",
	})
}
