package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/connectsso/connect/scim/store"
	"github.com/connectsso/connect/scim/store/sqlite"
	"github.com/connectsso/connect/scim/store/storetest"
)

func TestIdPConformance(t *testing.T) {
	storetest.RunIdP(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "hub.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
