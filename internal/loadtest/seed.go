package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// seedVersion names the layout of cached databases; bump it when the seed
// changes so that stale caches are not reused.
const seedVersion = 1

// patchAdd is how many members the PATCH phase adds; groupTarget the size of
// the group it adds them to (the budget's 10,000 and 100,000).
const (
	patchAdd    = 10000
	groupTarget = 100000
)

// groupSizes scales the PATCH phase to n users: the budget's sizes when n
// allows, else half the users in the group and a quarter added.
func groupSizes(n int) (group, add int) {
	if n >= groupTarget+patchAdd {
		return groupTarget, patchAdd
	}
	return n / 2, n / 4
}

// cacheDir is ${XDG_CACHE_HOME:-~/.cache}/connect-bench.
func cacheDir() (string, error) {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "connect-bench"), nil
}

// userRow is the CSV row of seeded user i with the given userName prefix; the
// columns are those of csvHeader.
func userRow(prefix string, i int) []string {
	active := "true"
	if i%10 == 0 {
		active = "false"
	}
	name := fmt.Sprintf("%s%07d", prefix, i)
	return []string{
		name, "ext-" + name, fmt.Sprintf("User %d", i),
		"Given" + strconv.Itoa(i%1000), "Family" + strconv.Itoa(i%5000),
		name + "@example.com", strconv.Itoa(100000 + i), "Dept" + strconv.Itoa(i%50), active,
	}
}

var csvHeader = []string{"userName", "externalId", "displayName", "givenName", "familyName", "email", "employeeNumber", "department", "active"}

// writeCSV writes an import file of n users named prefix0000000….
func writeCSV(path, prefix string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	w := csv.NewWriter(bw)
	_ = w.Write(csvHeader)
	for i := range n {
		_ = w.Write(userRow(prefix, i))
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// seeded is a cached database of n users and what the phases need about it.
type seeded struct {
	db   string // path of the pristine database (copied before each run)
	meta meta
	ids  []string // every user id, in creation order
}

// seed returns the cached database of n users, building it when missing:
// `connect hub users import` of n generated users, an admin token, and (through
// a hub) the ids and the PATCH phase's group.
func seed(ctx context.Context, log *slog.Logger, bin, dir string, n int) (*seeded, error) {
	stem := filepath.Join(dir, fmt.Sprintf("hub-%d-v%d", n, seedVersion))
	s := &seeded{db: stem + ".db"}
	if m, err := readMeta(stem + ".json"); err == nil && m.Version == seedVersion && m.Users == n {
		if ids, err := readLines(stem + ".ids"); err == nil && len(ids) == n {
			if _, err := os.Stat(s.db); err == nil {
				s.meta, s.ids = m, ids
				log.Info("using cached database", "path", s.db, "users", n)
				return s, nil
			}
		}
	}
	log.Info("seeding database (cached for later runs)", "users", n, "path", s.db)
	start := time.Now()
	tmp := stem + ".tmp.db"
	for _, suffix := range []string{"", "-wal", "-shm"} {
		_ = os.Remove(tmp + suffix)
	}
	csvPath := stem + ".csv"
	if err := writeCSV(csvPath, "user", n); err != nil {
		return nil, err
	}
	defer os.Remove(csvPath)
	dsn := "sqlite:" + tmp
	t0 := time.Now()
	if _, err := connectCmd(ctx, bin, "hub", "users", "import", "--store", dsn, "--no-progress", csvPath); err != nil {
		return nil, err
	}
	s.meta.ImportSeconds = time.Since(t0).Seconds()
	log.Info("imported", "users", n, "seconds", s.meta.ImportSeconds)
	tok, err := connectCmd(ctx, bin, "hub", "tokens", "create", "--name", "loadtest", "--store", dsn)
	if err != nil {
		return nil, err
	}
	s.meta.Token = strings.TrimSpace(tok)

	h, err := startHub(ctx, bin, dsn, stem+".seed.log")
	if err != nil {
		return nil, err
	}
	defer func() {
		if h != nil {
			_ = h.stop()
		}
	}()
	c := newClient(h.base, s.meta.Token, 4)
	if s.ids, err = c.allUserIDs(ctx); err != nil {
		return nil, err
	}
	if len(s.ids) != n {
		return nil, fmt.Errorf("hub lists %d users, want %d", len(s.ids), n)
	}
	group, _ := groupSizes(n)
	out, err := c.expect(ctx, http.StatusCreated, "POST", "/Groups", map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "loadtest-group",
	})
	if err != nil {
		return nil, err
	}
	var g struct{ ID string }
	if err := json.Unmarshal(out, &g); err != nil {
		return nil, err
	}
	for lo := 0; lo < group; lo += patchAdd {
		if _, err := c.expect(ctx, http.StatusOK, "PATCH", "/Groups/"+g.ID, memberPatch("add", s.ids[lo:min(lo+patchAdd, group)])); err != nil {
			return nil, err
		}
	}
	s.meta.GroupID, s.meta.GroupSize = g.ID, group
	err = h.stop()
	h = nil
	if err != nil {
		return nil, fmt.Errorf("seed hub: %w", err)
	}
	if err := writeLines(stem+".ids", s.ids); err != nil {
		return nil, err
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		_ = os.Remove(s.db + suffix)
	}
	if err := os.Rename(tmp, s.db); err != nil {
		return nil, err
	}
	if _, err := os.Stat(tmp + "-wal"); err == nil {
		if err := os.Rename(tmp+"-wal", s.db+"-wal"); err != nil {
			return nil, err
		}
	}
	_ = os.Remove(tmp + "-shm")
	s.meta.Version, s.meta.Users = seedVersion, n
	s.meta.SeedSeconds = time.Since(start).Seconds()
	if err := writeMeta(stem+".json", s.meta); err != nil {
		return nil, err
	}
	log.Info("seeded", "users", n, "group", group, "seconds", s.meta.SeedSeconds)
	return s, nil
}

func readLines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(b)), nil
}

func writeLines(path string, lines []string) error {
	return os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}
