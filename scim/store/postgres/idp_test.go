package postgres_test

import (
	"context"
	"testing"

	"github.com/connectsso/connect/internal/testenv"
	"github.com/connectsso/connect/scim/store"
	"github.com/connectsso/connect/scim/store/postgres"
	"github.com/connectsso/connect/scim/store/storetest"
)

func TestIdPConformance(t *testing.T) {
	storetest.RunIdP(t, func(t *testing.T) store.Store {
		s, err := postgres.Open(context.Background(), testenv.PostgresSchema(t), postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
