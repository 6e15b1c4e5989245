package scimtarget

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/scim"
)

// Config configures a Target.
type Config struct {
	// BaseURL is the target's SCIM base URL, e.g. https://app.example/scim/v2.
	BaseURL string
	// Token is the bearer token the target issued for provisioning. Never logged.
	Token string
	// Client sends the requests; nil means a client with a 30 s timeout and
	// keep-alive connections. Without a CheckRedirect of its own, it follows
	// redirects only within the BaseURL's origin.
	Client *http.Client
	// Extension: the target accepts the Connect user extension (emailVerified,
	// interests, customFields).
	Extension bool
	// Metadata keeps the bridge's account metadata in reserved custom fields of
	// the Connect extension (needs Extension): SuspendedBy, soft deletes and
	// Privileged then round-trip.
	Metadata bool
	// PasswordHashes: the target stores and returns the extension's passwordHash
	// (a Connect hub with sync-password-hashes on). Needs Extension.
	PasswordHashes bool
	// MemberChunk is the most members one PATCH request adds or removes; 0 means
	// 100.
	MemberChunk int
	// MaxRetries bounds the retries of one request; 0 means 5.
	MaxRetries int
	// MaxRetryWait caps one wait (a Retry-After beyond it is cut); 0 means 60 s.
	MaxRetryWait time.Duration
	// Logger receives retries and failures; discarded when nil.
	Logger *slog.Logger
	// Clock returns the current time (Retry-After dates); time.Now when nil.
	Clock func() time.Time
	// Sleep waits between retries; nil waits on a timer (or until ctx ends).
	Sleep func(ctx context.Context, d time.Duration) error
	// OnRetry, when set, is called with "retried" for every retry and
	// "throttled" for every 429 (metrics).
	OnRetry func(kind string)
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	u, err := url.Parse(c.BaseURL)
	switch {
	case c.BaseURL == "" || err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		errs = append(errs, fmt.Errorf("base URL %q: want http(s)://host/path", c.BaseURL))
	case u.Scheme == "http" && !loopback(u.Hostname()):
		errs = append(errs, fmt.Errorf("base URL %q: plain http only for loopback addresses", c.BaseURL))
	}
	if c.Token == "" {
		errs = append(errs, errors.New("token is empty"))
	}
	if (c.Metadata || c.PasswordHashes) && !c.Extension {
		errs = append(errs, errors.New("metadata and password hashes need the Connect extension"))
	}
	if c.MemberChunk < 0 || c.MemberChunk > 1000 {
		errs = append(errs, fmt.Errorf("member chunk %d: want 1..1000", c.MemberChunk))
	}
	if c.MaxRetries < 0 || c.MaxRetryWait < 0 {
		errs = append(errs, errors.New("retries and retry wait must not be negative"))
	}
	return errors.Join(errs...)
}

func loopback(host string) bool {
	return host == "localhost" || strings.HasPrefix(host, "127.") || host == "::1"
}

// Target is a local directory kept in a site application's SCIM endpoint. It
// implements local.Directory.
type Target struct {
	cfg     Config
	base    string
	cursors bool // the target offers RFC 9865 cursors
	etags   bool // the target does not say it lacks ETags: writes carry If-Match
	// noPatch: the target has no PATCH for users (its ServiceProviderConfig
	// says so, or it answered 501/405): updates are merged and PUT.
	noPatch atomic.Bool
	ownHTTP bool
}

var _ local.Directory = (*Target)(nil)

// New validates cfg, reads the target's ServiceProviderConfig (paging
// abilities) and returns the Target.
func New(ctx context.Context, cfg Config) (*Target, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("scim target: %w", err)
	}
	t := &Target{cfg: cfg, base: strings.TrimRight(cfg.BaseURL, "/")}
	if t.cfg.Client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 16
		t.cfg.Client = &http.Client{Timeout: 30 * time.Second, Transport: tr}
		t.ownHTTP = true
	} else {
		cp := *t.cfg.Client // the caller's client stays as it was
		t.cfg.Client = &cp
	}
	if t.cfg.Client.CheckRedirect == nil {
		t.cfg.Client.CheckRedirect = sameOriginRedirects
	}
	if t.cfg.MemberChunk == 0 {
		t.cfg.MemberChunk = 100
	}
	if t.cfg.MaxRetries == 0 {
		t.cfg.MaxRetries = 5
	}
	if t.cfg.MaxRetryWait == 0 {
		t.cfg.MaxRetryWait = time.Minute
	}
	if t.cfg.Logger == nil {
		t.cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if t.cfg.Clock == nil {
		t.cfg.Clock = time.Now
	}
	if t.cfg.Sleep == nil {
		t.cfg.Sleep = sleepCtx
	}
	if err := t.discover(ctx); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

func (t *Target) now() time.Time { return t.cfg.Clock() }

// Capabilities follows from the configuration.
func (t *Target) Capabilities() local.Capabilities {
	f := local.AllFields
	if !t.cfg.Extension {
		f &^= local.FieldEmailVerified | local.FieldInterests | local.FieldCustomFields
	}
	if !t.cfg.Metadata {
		f &^= local.FieldDeleted | local.FieldPrivileged
	}
	if !t.cfg.PasswordHashes {
		f &^= local.FieldPasswordHash
	}
	return local.Capabilities{
		Fields:         f,
		PasswordHashes: t.cfg.PasswordHashes,
		SoftDelete:     t.cfg.Metadata,
		Privileged:     t.cfg.Metadata,
		LocalMetadata:  t.cfg.Metadata,
		// The site's own custom fields are never removed (customFieldOps).
		SiteCustomFields: t.cfg.Extension,
	}
}

// Ping reads the ServiceProviderConfig.
func (t *Target) Ping(ctx context.Context) error {
	resp, err := t.do(ctx, http.MethodGet, "/ServiceProviderConfig", nil, nil, nil)
	if err != nil {
		return err
	}
	if resp.status != http.StatusOK {
		return statusErr("ping", resp)
	}
	return nil
}

// Close releases idle connections of the Target's own client.
func (t *Target) Close() error {
	if t.ownHTTP {
		t.cfg.Client.CloseIdleConnections()
	}
	return nil
}

const (
	enterpriseAttr = scim.SchemaEnterpriseUser + ":employeeNumber"
	customFields   = scim.SchemaConnectUser + ":customFields"
	groupKindAttr  = scim.SchemaConnectGroup + ":kind"
)

// userQuery asks for every attribute the mapping reads; the password hash is
// returned only when named.
func (t *Target) userQuery() url.Values {
	if !t.cfg.PasswordHashes {
		return url.Values{"excludedAttributes": {"groups"}}
	}
	return url.Values{"attributes": {"userName,externalId,name,displayName,title,preferredLanguage,timezone,active,emails,addresses,phoneNumbers," +
		scim.SchemaEnterpriseUser + "," + scim.SchemaConnectUser + "," + scim.SchemaConnectUser + ":passwordHash"}}
}

// fetched is a user as read from the target, with its entity tag and the
// resource it was read from (the values an update's PATCH paths name).
type fetched struct {
	acct local.Account
	etag string
	user *scim.User
}

// etagOf is the version of u: the answer's ETag, else meta.version (the only
// one for a listed resource, resp nil).
func etagOf(resp *response, u *scim.User) string {
	if resp != nil {
		if e := resp.header.Get("ETag"); e != "" {
			return e
		}
	}
	if u.Meta != nil {
		return u.Meta.Version
	}
	return ""
}

func (t *Target) getUser(ctx context.Context, id string) (fetched, error) {
	if id == "" || strings.ContainsAny(id, "/?#") {
		return fetched{}, fmt.Errorf("account %q: %w", id, local.ErrNotFound)
	}
	resp, err := t.do(ctx, http.MethodGet, "/Users/"+url.PathEscape(id), t.userQuery(), nil, nil)
	if err != nil {
		return fetched{}, err
	}
	if resp.status != http.StatusOK {
		return fetched{}, statusErr("get user "+id, resp)
	}
	var u scim.User
	if err := decode("get user", resp, &u); err != nil {
		return fetched{}, err
	}
	return fetched{acct: t.account(u), etag: etagOf(resp, &u), user: &u}, nil
}

// findUsers returns every user matching filter (lookups: few results).
func (t *Target) findUsers(ctx context.Context, filter string) ([]local.Account, error) {
	fs, err := t.findFetched(ctx, filter)
	if err != nil {
		return nil, err
	}
	out := make([]local.Account, len(fs))
	for i, f := range fs {
		out[i] = f.acct
	}
	return out, nil
}

// findFetched is findUsers with each user's resource and version.
func (t *Target) findFetched(ctx context.Context, filter string) ([]fetched, error) {
	var out []fetched
	after := ""
	for range 1000 {
		us, next, err := list[scim.User](ctx, t, "/Users", filter, after, local.MaxBatch, t.userQuery())
		if err != nil {
			return nil, err
		}
		for i := range us {
			out = append(out, fetched{acct: t.account(us[i]), etag: etagOf(nil, &us[i]), user: &us[i]})
		}
		if next == "" {
			return out, nil
		}
		after = next
	}
	return nil, fmt.Errorf("scim target: lookup %q does not end: %w", filter, local.ErrUnavailable)
}

func sortByID(as []local.Account) {
	slices.SortFunc(as, func(a, b local.Account) int { return strings.Compare(a.ID, b.ID) })
}

// Account returns the account with id.
func (t *Target) Account(ctx context.Context, id string) (local.Account, error) {
	f, err := t.getUser(ctx, id)
	return f.acct, err
}

// AccountByUsername finds an account case-insensitively.
func (t *Target) AccountByUsername(ctx context.Context, username string) (local.Account, error) {
	if username == "" {
		return local.Account{}, fmt.Errorf("account %q: %w", username, local.ErrNotFound)
	}
	as, err := t.findUsers(ctx, "userName eq "+quote(username))
	if err != nil {
		return local.Account{}, err
	}
	for _, a := range as {
		if local.FoldKey(a.Username) == local.FoldKey(username) {
			return a, nil
		}
	}
	return local.Account{}, fmt.Errorf("account %q: %w", username, local.ErrNotFound)
}

// AccountByHubID returns the account linked to (server, hubUserID).
func (t *Target) AccountByHubID(ctx context.Context, server, hubUserID string) (local.Account, error) {
	m, err := t.AccountsByHubID(ctx, server, []string{hubUserID})
	if err != nil {
		return local.Account{}, err
	}
	a, ok := m[hubUserID]
	if !ok {
		return a, fmt.Errorf("account of (%s, %s): %w", server, hubUserID, local.ErrNotFound)
	}
	return a, nil
}

// keyChunk bounds the alternatives of one "externalId eq … or …" filter.
const keyChunk = 25

// AccountsByHubID returns the accounts of server linked to hubUserIDs.
func (t *Target) AccountsByHubID(ctx context.Context, server string, hubUserIDs []string) (map[string]local.Account, error) {
	fs, err := t.fetchByHubID(ctx, server, hubUserIDs)
	if err != nil {
		return nil, err
	}
	out := make(map[string]local.Account, len(fs))
	for id, f := range fs {
		out[id] = f.acct
	}
	return out, nil
}

// fetchByHubID is AccountsByHubID with each user's resource and version.
func (t *Target) fetchByHubID(ctx context.Context, server string, hubUserIDs []string) (map[string]fetched, error) {
	if err := local.CheckIDs("hub user ids", hubUserIDs); err != nil {
		return nil, err
	}
	out := make(map[string]fetched, len(hubUserIDs))
	if server == "" {
		return out, nil
	}
	for chunk := range slices.Chunk(hubUserIDs, keyChunk) {
		alts := make([]string, len(chunk))
		for i, id := range chunk {
			alts[i] = "externalId eq " + quote(userKey(server, id))
		}
		fs, err := t.findFetched(ctx, strings.Join(alts, " or "))
		if err != nil {
			return nil, err
		}
		for _, f := range fs {
			if a := f.acct; a.Server == server && slices.Contains(chunk, a.HubUserID) {
				out[a.HubUserID] = f
			}
		}
	}
	return out, nil
}

// AccountsByEmail returns every account with that email, case-insensitively.
func (t *Target) AccountsByEmail(ctx context.Context, email string) ([]local.Account, error) {
	if email == "" {
		return nil, nil
	}
	as, err := t.findUsers(ctx, "emails.value eq "+quote(email))
	if err != nil {
		return nil, err
	}
	as = slices.DeleteFunc(as, func(a local.Account) bool { return local.FoldKey(a.Email) != local.FoldKey(email) })
	sortByID(as)
	return as, nil
}

// AccountsByIDNumber returns every account with exactly that ID number.
func (t *Target) AccountsByIDNumber(ctx context.Context, idNumber string) ([]local.Account, error) {
	if idNumber == "" {
		return nil, nil
	}
	as, err := t.findUsers(ctx, enterpriseAttr+" eq "+quote(idNumber))
	if err != nil {
		return nil, err
	}
	as = slices.DeleteFunc(as, func(a local.Account) bool { return a.IDNumber != idNumber })
	sortByID(as)
	return as, nil
}

// accountFilter compiles what the target can filter of q; keep applies all of q
// exactly to what comes back.
func (t *Target) accountFilter(q local.AccountQuery) (string, error) {
	var parts []string
	if q.Server != "" {
		parts = append(parts, "externalId sw "+quote(url.QueryEscape(q.Server)+":"))
	} else if q.Auth == local.AuthConnect {
		parts = append(parts, "externalId pr")
	}
	deleted := customFields + `[name eq ` + quote(metaDeleted)
	switch q.Deleted {
	case local.DeletedExclude:
		if t.cfg.Metadata {
			parts = append(parts, "not ("+deleted+"])")
		}
	case local.DeletedOnly:
		if !t.cfg.Metadata {
			return "", fmt.Errorf("scim target without metadata lists no deleted accounts: %w", local.ErrUnsupported)
		}
		if q.DeletedBefore.IsZero() {
			parts = append(parts, deleted+"]")
		} else {
			parts = append(parts, deleted+" and value lt "+quote(q.DeletedBefore.UTC().Format(deletedLayout))+"]")
		}
	}
	return strings.Join(parts, " and "), nil
}

func keep(q local.AccountQuery, a local.Account) bool {
	switch {
	case q.Server != "" && a.Server != q.Server,
		q.Auth != "" && a.Auth != q.Auth,
		q.Deleted == local.DeletedExclude && a.IsDeleted(),
		q.Deleted == local.DeletedOnly && !a.IsDeleted(),
		q.Deleted == local.DeletedOnly && !q.DeletedBefore.IsZero() && !a.Deleted.Before(q.DeletedBefore):
		return false
	}
	return true
}

// ListAccounts pages through the target's users.
func (t *Target) ListAccounts(ctx context.Context, q local.AccountQuery) ([]local.Account, string, error) {
	filter, err := t.accountFilter(q)
	if err != nil {
		return nil, "", err
	}
	us, next, err := list[scim.User](ctx, t, "/Users", filter, q.After, local.Limit(q.Limit), t.userQuery())
	if err != nil {
		return nil, "", err
	}
	out := make([]local.Account, 0, len(us))
	for _, u := range us {
		if a := t.account(u); keep(q, a) {
			out = append(out, a)
		}
	}
	return out, next, nil
}

// CountAccounts counts with the target's totalResults when its filter is exact,
// and by listing otherwise (an Auth filter: a site's own externalId is not a
// connect account).
func (t *Target) CountAccounts(ctx context.Context, q local.AccountQuery) (int64, error) {
	filter, err := t.accountFilter(q)
	if err != nil {
		return 0, err
	}
	if q.Auth == "" {
		return t.count(ctx, "/Users", filter)
	}
	var n int64
	q.After, q.Limit = "", local.MaxBatch
	for {
		as, next, err := t.ListAccounts(ctx, q)
		if err != nil {
			return 0, err
		}
		n += int64(len(as))
		if next == "" {
			return n, nil
		}
		q.After = next
	}
}

// PurgeAccounts deletes soft-deleted users from the target.
func (t *Target) PurgeAccounts(ctx context.Context, ids []string) (int, error) {
	if err := local.CheckIDs("account ids", ids); err != nil {
		return 0, err
	}
	if !t.cfg.Metadata {
		return 0, fmt.Errorf("scim target without metadata keeps no soft deletes to purge: %w", local.ErrUnsupported)
	}
	n := 0
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		f, err := t.getUser(ctx, id)
		if errors.Is(err, local.ErrNotFound) {
			continue
		}
		if err != nil {
			return n, err
		}
		if !f.acct.IsDeleted() {
			continue
		}
		resp, err := t.do(ctx, http.MethodDelete, "/Users/"+url.PathEscape(id), nil, nil, nil)
		if err != nil {
			return n, err
		}
		switch resp.status {
		case http.StatusNoContent, http.StatusOK:
			n++
		case http.StatusNotFound: // deleted meanwhile
		default:
			return n, statusErr("delete user "+id, resp)
		}
	}
	return n, nil
}

// sameOriginRedirects follows a redirect only within the origin (scheme, host
// and port) of the first request. net/http forwards Authorization to any URL
// with the same host name, and a 307 or 308 resends the body (accounts,
// password hashes): without this an https target redirecting to http:// on
// its own host, or to another port, would receive both in clear or on a
// service they were never meant for.
func sameOriginRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	first := via[0].URL
	if !strings.EqualFold(req.URL.Scheme, first.Scheme) || !strings.EqualFold(req.URL.Host, first.Host) {
		return fmt.Errorf("refused a redirect from %s://%s to another origin (%s://%s): the target URL must name the final address",
			first.Scheme, first.Host, req.URL.Scheme, req.URL.Host)
	}
	return nil
}
