package hub

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/connectsso/connect/scim"
	"github.com/connectsso/connect/scim/password"
	"github.com/connectsso/connect/scim/store"
)

// DefaultImportBatch is how many users one import transaction writes.
const DefaultImportBatch = 1000

// ErrImportHeader means the CSV header row is unusable (unknown or duplicate
// column, no userName column); nothing was imported.
var ErrImportHeader = errors.New("bad header row")

// column sets one attribute of a user from a non-empty cell.
type column struct {
	name string // canonical column name, as documented
	set  func(u *scim.User, v string) error
}

func ensureName(u *scim.User) *scim.Name {
	if u.Name == nil {
		u.Name = &scim.Name{}
	}
	return u.Name
}

func ensureEnterprise(u *scim.User) *scim.EnterpriseUser {
	if u.Enterprise == nil {
		u.Enterprise = &scim.EnterpriseUser{}
	}
	return u.Enterprise
}

func ensureConnect(u *scim.User) *scim.ConnectUser {
	if u.Connect == nil {
		u.Connect = &scim.ConnectUser{}
	}
	return u.Connect
}

func workAddress(u *scim.User) *scim.Address {
	for i := range u.Addresses {
		if u.Addresses[i].Type == "work" {
			return &u.Addresses[i]
		}
	}
	u.Addresses = append(u.Addresses, scim.Address{Type: "work", Primary: len(u.Addresses) == 0})
	return &u.Addresses[len(u.Addresses)-1]
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "yes", "y":
		return true, nil
	case "false", "0", "no", "n":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (true/false)", v)
}

func str(f func(u *scim.User) *string) func(*scim.User, string) error {
	return func(u *scim.User, v string) error { *f(u) = v; return nil }
}

func phone(typ string) func(*scim.User, string) error {
	return func(u *scim.User, v string) error {
		u.PhoneNumbers = append(u.PhoneNumbers, scim.MultiValue{Value: v, Type: typ, Primary: scim.Bool(len(u.PhoneNumbers) == 0)})
		return nil
	}
}

// importColumns is the documented list of CSV columns. Aliases map to the same
// canonical column; names match case-insensitively.
var importColumns = []struct {
	names []string
	col   column
}{
	{[]string{"userName"}, column{"userName", str(func(u *scim.User) *string { return &u.UserName })}},
	{[]string{"externalId"}, column{"externalId", str(func(u *scim.User) *string { return &u.ExternalID })}},
	{[]string{"displayName"}, column{"displayName", str(func(u *scim.User) *string { return &u.DisplayName })}},
	{[]string{"nickName"}, column{"nickName", str(func(u *scim.User) *string { return &u.NickName })}},
	{[]string{"givenName", "name.givenName"}, column{"name.givenName", str(func(u *scim.User) *string { return &ensureName(u).GivenName })}},
	{[]string{"familyName", "name.familyName"}, column{"name.familyName", str(func(u *scim.User) *string { return &ensureName(u).FamilyName })}},
	{[]string{"middleName", "name.middleName"}, column{"name.middleName", str(func(u *scim.User) *string { return &ensureName(u).MiddleName })}},
	{[]string{"title"}, column{"title", str(func(u *scim.User) *string { return &u.Title })}},
	{[]string{"userType"}, column{"userType", str(func(u *scim.User) *string { return &u.UserType })}},
	{[]string{"preferredLanguage"}, column{"preferredLanguage", str(func(u *scim.User) *string { return &u.PreferredLanguage })}},
	{[]string{"locale"}, column{"locale", str(func(u *scim.User) *string { return &u.Locale })}},
	{[]string{"timezone"}, column{"timezone", str(func(u *scim.User) *string { return &u.Timezone })}},
	{[]string{"active"}, column{"active", func(u *scim.User, v string) error {
		b, err := parseBool(v)
		if err != nil {
			return fmt.Errorf("active: %w", err)
		}
		u.Active = scim.BoolPtr(b)
		return nil
	}}},
	{[]string{"email", `emails[type eq "work"].value`}, column{`emails[type eq "work"].value`, func(u *scim.User, v string) error {
		if !strings.Contains(v, "@") {
			return fmt.Errorf("email %q has no @", v)
		}
		u.Emails = append(u.Emails, scim.MultiValue{Value: v, Type: "work", Primary: true})
		return nil
	}}},
	{[]string{"phone", `phoneNumbers[type eq "work"].value`}, column{`phoneNumbers[type eq "work"].value`, phone("work")}},
	{[]string{"mobile", `phoneNumbers[type eq "mobile"].value`}, column{`phoneNumbers[type eq "mobile"].value`, phone("mobile")}},
	{[]string{"city", `addresses[type eq "work"].locality`}, column{`addresses[type eq "work"].locality`, func(u *scim.User, v string) error {
		workAddress(u).Locality = v
		return nil
	}}},
	{[]string{"country", `addresses[type eq "work"].country`}, column{`addresses[type eq "work"].country`, func(u *scim.User, v string) error {
		workAddress(u).Country = v
		return nil
	}}},
	{[]string{"employeeNumber", scim.SchemaEnterpriseUser + ":employeeNumber"}, column{"employeeNumber", str(func(u *scim.User) *string { return &ensureEnterprise(u).EmployeeNumber })}},
	{[]string{"organization", scim.SchemaEnterpriseUser + ":organization"}, column{"organization", str(func(u *scim.User) *string { return &ensureEnterprise(u).Organization })}},
	{[]string{"department", scim.SchemaEnterpriseUser + ":department"}, column{"department", str(func(u *scim.User) *string { return &ensureEnterprise(u).Department })}},
	{[]string{"division", scim.SchemaEnterpriseUser + ":division"}, column{"division", str(func(u *scim.User) *string { return &ensureEnterprise(u).Division })}},
	{[]string{"costCenter", scim.SchemaEnterpriseUser + ":costCenter"}, column{"costCenter", str(func(u *scim.User) *string { return &ensureEnterprise(u).CostCenter })}},
	{[]string{"interests", scim.SchemaConnectUser + ":interests"}, column{"interests", func(u *scim.User, v string) error {
		for _, s := range strings.Split(v, ";") {
			if s = strings.TrimSpace(s); s != "" {
				ensureConnect(u).Interests = append(ensureConnect(u).Interests, s)
			}
		}
		return nil
	}}},
	{[]string{"emailVerified", scim.SchemaConnectUser + ":emailVerified"}, column{"emailVerified", func(u *scim.User, v string) error {
		b, err := parseBool(v)
		if err != nil {
			return fmt.Errorf("emailVerified: %w", err)
		}
		ensureConnect(u).EmailVerified = scim.BoolPtr(b)
		return nil
	}}},
	{[]string{"password"}, column{"password", str(func(u *scim.User) *string { return &u.Password })}},
	{[]string{"passwordHash", scim.SchemaConnectUser + ":passwordHash"}, column{"passwordHash", func(u *scim.User, v string) error {
		switch err := password.Check(v); {
		case errors.Is(err, password.ErrUnknownFormat):
			return errors.New("passwordHash: not an argon2id or bcrypt hash")
		case err != nil:
			// A hash no login could use, or one that would make every
			// attempt cost hours or gigabytes. The hash is not quoted.
			return errors.New("passwordHash: unusable (malformed, or over the cost limits)")
		}
		ensureConnect(u).PasswordHash = v
		return nil
	}}},
}

var columnIndex = func() map[string]column {
	m := map[string]column{}
	for _, c := range importColumns {
		for _, n := range c.names {
			m[strings.ToLower(n)] = c.col
		}
	}
	return m
}()

// ImportColumns returns the accepted CSV column names (aliases included), in the
// documented order.
func ImportColumns() []string {
	var out []string
	for _, c := range importColumns {
		out = append(out, c.names...)
	}
	return out
}

// RowError is the failure of one CSV row. Row is the row's line number in the file
// (the header is line 1).
type RowError struct {
	Row      int
	UserName string
	Err      error
}

// Error returns `row N: userName "x": reason`.
func (e *RowError) Error() string {
	if e.UserName == "" {
		return fmt.Sprintf("row %d: %v", e.Row, e.Err)
	}
	return fmt.Sprintf("row %d: userName %q: %v", e.Row, e.UserName, e.Err)
}

// Unwrap returns the cause.
func (e *RowError) Unwrap() error { return e.Err }

// ImportOptions tune ImportUsers.
type ImportOptions struct {
	// Actor names who imports, for the audit log.
	Actor string
	// Source names the input (a file name) for the audit log.
	Source string
	// BatchSize is the number of rows per transaction (default DefaultImportBatch).
	BatchSize int
	// HashPassword hashes the clear password column. Nil refuses rows that have one.
	HashPassword func(string) (string, error)
	// Progress, when set, is called after each batch with the rows handled so far.
	Progress func(rows int)
	// OnError, when set, is called for each failed row as soon as it is known.
	OnError func(*RowError)
}

// ImportResult summarises an import.
type ImportResult struct {
	Imported int
	Failed   int
	// Errors lists each failed row in file order.
	Errors []*RowError
}

// ImportUsers reads a CSV file whose header row names user attributes (see
// ImportColumns) and creates one user per row, in transactions of BatchSize rows.
// Every row is validated on its own: a bad or conflicting row is reported and not
// written, the others are. ErrImportHeader (nothing written) for an unusable
// header; a read or store failure other than a row's own stops the import with an
// error, keeping what earlier batches committed.
func ImportUsers(ctx context.Context, st store.Store, r io.Reader, opt ImportOptions) (ImportResult, error) {
	if opt.BatchSize <= 0 {
		opt.BatchSize = DefaultImportBatch
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // checked per row so that one short row is one error
	cr.ReuseRecord = false
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return ImportResult{}, fmt.Errorf("%w: the file is empty", ErrImportHeader)
	}
	if err != nil {
		return ImportResult{}, fmt.Errorf("%w: %v", ErrImportHeader, err)
	}
	cols, err := parseHeader(header)
	if err != nil {
		return ImportResult{}, err
	}

	var res ImportResult
	var done int
	fail := func(e *RowError) {
		res.Failed++
		res.Errors = append(res.Errors, e)
		if opt.OnError != nil {
			opt.OnError(e)
		}
	}
	seen := map[string]int{} // lower-case userName → row, to catch duplicates within the file
	batch := make([]pendingRow, 0, opt.BatchSize)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := hashPasswords(ctx, batch, opt.HashPassword); err != nil {
			return err
		}
		var ok []pendingRow
		for _, p := range batch {
			if p.err != nil {
				fail(&RowError{Row: p.row, UserName: p.user.UserName, Err: p.err})
			} else {
				ok = append(ok, p)
			}
		}
		n, err := createUsers(ctx, st, ok, fail)
		res.Imported += n
		done += len(batch)
		batch = batch[:0]
		if opt.Progress != nil {
			opt.Progress(done)
		}
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				// A quoting error spoils only this record; the reader resumes at the next line.
				fail(&RowError{Row: pe.StartLine, Err: invalid("malformed CSV: %v", pe.Err)})
				done++
				continue
			}
			return res, fmt.Errorf("read csv: %w", err)
		}
		if len(rec) == 1 && rec[0] == "" {
			continue
		}
		line, _ := cr.FieldPos(0)
		u, rerr := parseRow(cols, rec)
		if rerr == nil {
			key := strings.ToLower(u.UserName)
			if first, dup := seen[key]; dup {
				rerr = reason{store.ErrConflict, fmt.Sprintf("already exists (same userName as row %d)", first)}
			} else {
				seen[key] = line
			}
		}
		batch = append(batch, pendingRow{row: line, user: u, err: rerr})
		if len(batch) == opt.BatchSize {
			if err := flush(); err != nil {
				return res, err
			}
		}
	}
	if err := flush(); err != nil {
		return res, err
	}
	sort.SliceStable(res.Errors, func(i, j int) bool { return res.Errors[i].Row < res.Errors[j].Row })
	aerr := st.Audit(ctx, store.AuditEntry{Actor: opt.Actor, Action: "users.import", Target: opt.Source,
		Detail: fmt.Sprintf("imported %d, failed %d", res.Imported, res.Failed)})
	if aerr != nil {
		return res, fmt.Errorf("audit import: %w", aerr)
	}
	return res, nil
}

type pendingRow struct {
	row  int
	user scim.User
	err  error
}

func parseHeader(header []string) ([]column, error) {
	cols := make([]column, len(header))
	var problems []string
	seen := map[string]bool{}
	for i, h := range header {
		name := strings.TrimSpace(h)
		if i == 0 {
			name = strings.TrimPrefix(name, "\ufeff") // a spreadsheet's byte-order mark
		}
		c, ok := columnIndex[strings.ToLower(name)]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("unknown column %q", name))
		case seen[c.name]:
			problems = append(problems, fmt.Sprintf("column %q given twice", name))
		default:
			seen[c.name] = true
			cols[i] = c
		}
	}
	if !seen["userName"] {
		problems = append(problems, "no userName column")
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s (known columns: %s)", ErrImportHeader, strings.Join(problems, "; "), strings.Join(ImportColumns(), ", "))
	}
	return cols, nil
}

func parseRow(cols []column, rec []string) (scim.User, error) {
	var u scim.User
	if len(rec) != len(cols) {
		// Still pick the userName for the report when it is there.
		for i, c := range cols {
			if c.name == "userName" && i < len(rec) {
				u.UserName = strings.TrimSpace(rec[i])
			}
		}
		return u, invalid("%d fields, the header has %d", len(rec), len(cols))
	}
	var errs []error
	for i, c := range cols {
		v := strings.TrimSpace(rec[i])
		if c.name == "password" || c.name == "passwordHash" {
			v = rec[i] // passwords keep their spaces
		}
		if v == "" {
			continue
		}
		if err := c.set(&u, v); err != nil {
			errs = append(errs, err)
		}
	}
	if u.UserName == "" {
		errs = append(errs, errors.New("userName is empty"))
	}
	if u.Password != "" && u.Connect != nil && u.Connect.PasswordHash != "" {
		errs = append(errs, errors.New("both password and passwordHash given"))
	}
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return u, invalid("%s", strings.Join(msgs, "; "))
	}
	u.SetSchemas()
	return u, nil
}

// hashPasswords replaces clear passwords by their hashes, on every CPU: argon2id
// is deliberately slow.
func hashPasswords(ctx context.Context, batch []pendingRow, hash func(string) (string, error)) error {
	var idx []int
	for i := range batch {
		if batch[i].err == nil && batch[i].user.Password != "" {
			if hash == nil {
				batch[i].err = invalid("password column given but passwords cannot be hashed here")
				batch[i].user.Password = ""
				continue
			}
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(idx)) {
		wg.Go(func() {
			for i := range work {
				p := &batch[i]
				h, err := hash(p.user.Password)
				p.user.Password = ""
				if err != nil {
					p.err = invalid("password: %v", err)
					continue
				}
				if p.user.Connect == nil {
					p.user.Connect = &scim.ConnectUser{}
				}
				p.user.Connect.PasswordHash = h
				p.user.SetSchemas()
			}
		})
	}
	for _, i := range idx {
		select {
		case work <- i:
		case <-ctx.Done():
			close(work)
			wg.Wait()
			return ctx.Err()
		}
	}
	close(work)
	wg.Wait()
	return nil
}

// createUsers writes one batch: in one transaction through store.Batcher when the
// backend has it, else row by row. Per-row failures go to fail; the error returned
// is a failure of the store itself.
func createUsers(ctx context.Context, st store.Store, rows []pendingRow, fail func(*RowError)) (int, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	users := make([]scim.User, len(rows))
	for i := range rows {
		users[i] = rows[i].user
	}
	var errs []error
	if b, ok := st.(store.Batcher); ok {
		_, errs = b.CreateUsers(ctx, users)
		if len(errs) != len(users) {
			return 0, fmt.Errorf("import: store returned %d results for %d users", len(errs), len(users))
		}
	} else {
		errs = make([]error, len(users))
		for i, u := range users {
			_, errs[i] = st.CreateUser(ctx, u)
		}
	}
	n := 0
	for i, err := range errs {
		if err == nil {
			n++
			continue
		}
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		fail(&RowError{Row: rows[i].row, UserName: rows[i].user.UserName, Err: rowCause(err)})
	}
	return n, nil
}

// rowCause turns a store error into the reason printed for a row.
func rowCause(err error) error {
	if errors.Is(err, store.ErrConflict) {
		return reason{store.ErrConflict, "already exists"}
	}
	return err
}

// reason is a row failure: msg is printed, errors.Is matches the store sentinel.
type reason struct {
	sentinel error
	msg      string
}

func (r reason) Error() string { return r.msg }
func (r reason) Unwrap() error { return r.sentinel }

func invalid(format string, args ...any) error {
	return reason{store.ErrInvalid, fmt.Sprintf(format, args...)}
}
