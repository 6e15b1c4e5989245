package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/connectsso/connect/internal/testenv"
	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/store/postgres"
)

// BenchmarkCreateUser measures one user created per transaction (POST
// /Users) on a schema of its own, with synchronous commit off so that the
// disk's flush does not hide the statements' cost.
func BenchmarkCreateUser(b *testing.B) {
	ctx := context.Background()
	s, err := postgres.Open(ctx, testenv.PostgresSchema(b)+"&options=-c%20synchronous_commit%3Doff", postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	base := time.Now().UnixNano()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		u := scim.User{
			UserName:   fmt.Sprintf("new-%d-%d", base, i),
			Emails:     []scim.MultiValue{{Value: fmt.Sprintf("u%d@example.com", i), Type: "work", Primary: true}},
			Enterprise: &scim.EnterpriseUser{EmployeeNumber: fmt.Sprint(i)},
		}
		if _, err := s.CreateUser(ctx, u); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateUsers measures a batch of 1,000 users in one transaction
// (users import, the bridge's initial sync), per user.
func BenchmarkCreateUsers(b *testing.B) {
	ctx := context.Background()
	s, err := postgres.Open(ctx, testenv.PostgresSchema(b)+"&options=-c%20synchronous_commit%3Doff", postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	base := time.Now().UnixNano()
	us := make([]scim.User, 1000)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		for j := range us {
			us[j] = scim.User{UserName: fmt.Sprintf("new-%d-%d-%d", base, i, j), Enterprise: &scim.EnterpriseUser{EmployeeNumber: fmt.Sprint(j)}}
		}
		if _, errs := s.CreateUsers(ctx, us); errs[0] != nil {
			b.Fatal(errs[0])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "µs/user")
}
