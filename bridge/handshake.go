package bridge

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/connectsso/connect/bridge/local"
	"github.com/connectsso/connect/scim"
)

// The bridge side of the setup-secret handshake (DESIGN.md §5). `connect bridge
// servers connect` makes a setup secret; the operator gives it to the hub
// (`connect hub clients add --url CLIENT_URL --secret S`); the hub calls
// RegisterPath with it, the bridge checks it, pins the hub's SAML metadata,
// stores the server and answers with its SP metadata. A refused request
// changes nothing: a secret taken for a request that then fails is put back.

// recordSetupSecret is the Records kind of setup secrets, keyed by the hex
// SHA-256 of the secret (never the secret itself).
const recordSetupSecret = "setup-secret"

// DefaultSetupSecretTTL is how long a setup secret stays usable.
const DefaultSetupSecretTTL = 24 * time.Hour

// MaxSetupSecretTTL is the longest a setup secret may stay usable: it is a
// short-lived credential for one connection, not a standing one.
const MaxSetupSecretTTL = 7 * 24 * time.Hour

// HubLink is what the handshake adds to a server: the hub's identity and the
// IdP metadata pinned when it connected (its keys are the only ones trusted
// for SSO from that hub).
type HubLink struct {
	HubID       string `json:"hubId"`
	HubURL      string `json:"hubUrl"`
	EntityID    string `json:"entityId"`
	MetadataURL string `json:"metadataUrl"`
	ClientID    string `json:"clientId"`
	Metadata    []byte `json:"metadata"`
}

func secretKey(secret string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(secret)))
	return hex.EncodeToString(sum[:])
}

// NewSetupSecret makes a single-use setup secret of 160 random bits that
// expires after ttl (DefaultSetupSecretTTL when not positive, at most
// MaxSetupSecretTTL), stores its hash and returns it.
func NewSetupSecret(ctx context.Context, r Records, ttl time.Duration, now time.Time) (string, error) {
	if ttl <= 0 {
		ttl = DefaultSetupSecretTTL
	}
	if ttl > MaxSetupSecretTTL {
		return "", fmt.Errorf("setup secret lifetime %s: at most %s", ttl, MaxSetupSecretTTL)
	}
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	secret := "cs-" + strings.ToLower(b32.EncodeToString(b[:]))
	err := r.PutRecord(ctx, local.Record{Kind: recordSetupSecret, Key: secretKey(secret), Value: []byte("{}"), Expires: now.Add(ttl)})
	if err != nil {
		return "", fmt.Errorf("store setup secret: %w", err)
	}
	return secret, nil
}

// Taker is the optional atomic read-and-delete of Records that makes a setup
// secret single-use under concurrent requests (bridge/local.Records has it).
type Taker interface {
	TakeRecord(ctx context.Context, kind, key string) (local.Record, error)
}

// Handshake serves the register and unregister endpoints.
type Handshake struct {
	// Records holds servers and setup secrets; it must also be a Taker.
	Records Records
	// SPMetadata returns the bridge's SAML SP metadata and entity ID.
	SPMetadata func(ctx context.Context) (entityID string, metadata []byte, err error)
	// HTTPClient fetches the hub's metadata; nil: 15 s timeout, no redirects.
	HTTPClient *http.Client
	// InsecureHTTP allows plain http hub URLs that are not on loopback.
	InsecureHTTP bool
	// OnChange is called after a server was added or removed (may be nil).
	OnChange func()
	Clock    func() time.Time
	Logger   *slog.Logger

	mu sync.Mutex // one registration at a time: duplicate checks hold
}

func (h *Handshake) now() time.Time {
	if h.Clock != nil {
		return h.Clock()
	}
	return time.Now()
}

func (h *Handshake) log() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func handshakeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(scim.HandshakeError{Code: code, Message: msg})
}

// checkHubURL accepts https, or http on loopback (or anywhere when insecure).
func checkHubURL(raw string, insecure bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil {
		return fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	if u.Scheme == "http" && !insecure {
		host := u.Hostname()
		ip := net.ParseIP(host)
		if !strings.EqualFold(host, "localhost") && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("%q: plain http is accepted only on loopback addresses", raw)
		}
	}
	return nil
}

// Bounds on what a registering hub sends: it is stored, shown (the hub's name
// on the login page and in `servers list`) and logged.
const (
	maxHandshakeName  = 200
	maxHandshakeURL   = 2048
	maxHandshakeToken = 512 // the hub refuses longer bearer tokens
)

// checkHandshakeField refuses a value longer than max bytes, not UTF-8, or
// holding a control character (a terminal escape or a newline would reach an
// operator's screen or the log as text); noSpace refuses spaces as well.
func checkHandshakeField(v string, max int, noSpace bool) error {
	if len(v) > max {
		return fmt.Errorf("is longer than %d bytes", max)
	}
	if !utf8.ValidString(v) {
		return errors.New("is not UTF-8")
	}
	if strings.IndexFunc(v, func(r rune) bool { return unicode.IsControl(r) || noSpace && unicode.IsSpace(r) }) >= 0 {
		if noSpace {
			return errors.New("has a space or control character")
		}
		return errors.New("has a control character")
	}
	return nil
}

// ServeRegister handles POST RegisterPath.
func (h *Handshake) ServeRegister(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		handshakeError(w, http.StatusMethodNotAllowed, scim.HandshakeBadRequest, "POST only")
		return
	}
	var req scim.RegisterRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	if err := dec.Decode(&req); err != nil {
		handshakeError(w, http.StatusBadRequest, scim.HandshakeBadRequest, "the body is not a registration request")
		return
	}
	var bad []string
	for name, v := range map[string]string{"secret": req.Secret, "hubId": req.HubID, "hubName": req.HubName, "token": req.Token, "clientId": req.ClientID, "entityId": req.EntityID} {
		if strings.TrimSpace(v) == "" {
			bad = append(bad, name+" is missing")
		}
	}
	for name, v := range map[string]string{"hubUrl": req.HubURL, "metadataUrl": req.MetadataURL, "scimUrl": req.SCIMURL} {
		if err := checkHubURL(v, h.InsecureHTTP); err != nil {
			bad = append(bad, name+": "+err.Error())
		}
	}
	for _, f := range []struct {
		name, v string
		max     int
		noSpace bool
	}{
		{"hubName", req.HubName, maxHandshakeName, false},
		{"hubId", req.HubID, maxHandshakeName, true},
		{"clientId", req.ClientID, maxHandshakeName, true},
		{"token", req.Token, maxHandshakeToken, true},
		{"entityId", req.EntityID, maxHandshakeURL, true},
		{"hubUrl", req.HubURL, maxHandshakeURL, true},
		{"metadataUrl", req.MetadataURL, maxHandshakeURL, true},
		{"scimUrl", req.SCIMURL, maxHandshakeURL, true},
	} {
		if err := checkHandshakeField(f.v, f.max, f.noSpace); err != nil {
			bad = append(bad, f.name+" "+err.Error())
		}
	}
	if len(bad) > 0 {
		handshakeError(w, http.StatusBadRequest, scim.HandshakeBadRequest, strings.Join(bad, "; "))
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	ctx := r.Context()
	taker, ok := h.Records.(Taker)
	if !ok {
		handshakeError(w, http.StatusInternalServerError, scim.HandshakeBadRequest, "this bridge's store cannot keep setup secrets")
		return
	}
	rec, err := taker.TakeRecord(ctx, recordSetupSecret, secretKey(req.Secret))
	if errors.Is(err, local.ErrNotFound) {
		// Unknown, used and expired look the same to the caller.
		h.log().Warn("handshake refused: setup secret unknown, used or expired", "hub", req.HubURL)
		handshakeError(w, http.StatusForbidden, scim.HandshakeBadSecret, "the setup secret is wrong, expired or already used")
		return
	}
	if err != nil {
		h.log().Error("handshake: take setup secret", "err", err)
		handshakeError(w, http.StatusInternalServerError, scim.HandshakeBadRequest, "internal error")
		return
	}
	// From here a failure puts the secret back: nothing changed on this side.
	restore := func() {
		if err := h.Records.PutRecord(context.WithoutCancel(ctx), rec); err != nil {
			h.log().Error("handshake: restore setup secret", "err", err)
		}
	}
	servers, err := ListServers(ctx, h.Records)
	if err != nil {
		restore()
		handshakeError(w, http.StatusInternalServerError, scim.HandshakeBadRequest, "internal error")
		return
	}
	for _, s := range servers {
		if s.Hub != nil && s.Hub.HubID == req.HubID {
			restore()
			handshakeError(w, http.StatusConflict, scim.HandshakeAlreadyConnected, "this bridge is already connected to that hub (server "+s.ID+")")
			return
		}
	}
	md, err := h.fetchMetadata(ctx, req.MetadataURL, req.EntityID)
	if err != nil {
		restore()
		handshakeError(w, http.StatusBadGateway, scim.HandshakeHubUnreachable, err.Error())
		return
	}
	spEntity, spMD, err := h.SPMetadata(ctx)
	if err != nil {
		restore()
		h.log().Error("handshake: SP metadata", "err", err)
		handshakeError(w, http.StatusInternalServerError, scim.HandshakeBadRequest, "internal error")
		return
	}
	name := uniqueName(servers, req.HubName)
	s := Server{ID: newServerID(), Name: name, URL: strings.TrimRight(req.SCIMURL, "/"), Token: req.Token, Added: h.now().UTC(),
		Hub: &HubLink{HubID: req.HubID, HubURL: strings.TrimRight(req.HubURL, "/"), EntityID: req.EntityID, MetadataURL: req.MetadataURL, ClientID: req.ClientID, Metadata: md}}
	if err := putServer(ctx, h.Records, s); err != nil {
		restore()
		h.log().Error("handshake: store server", "err", err)
		handshakeError(w, http.StatusInternalServerError, scim.HandshakeBadRequest, "internal error")
		return
	}
	h.log().Info("connected to hub", "server", s.ID, "name", s.Name, "hub", s.Hub.HubURL)
	if h.OnChange != nil {
		h.OnChange()
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(scim.RegisterResponse{ServerID: s.ID, SPEntityID: spEntity, SPMetadata: string(spMD)})
}

// ServeUnregister handles POST UnregisterPath: the hub undoing a registration
// it could not finish. The request must carry the token the hub gave.
func (h *Handshake) ServeUnregister(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		handshakeError(w, http.StatusMethodNotAllowed, scim.HandshakeBadRequest, "POST only")
		return
	}
	var req scim.UnregisterRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10)).Decode(&req); err != nil {
		handshakeError(w, http.StatusBadRequest, scim.HandshakeBadRequest, "the body is not an unregister request")
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	servers, err := ListServers(r.Context(), h.Records)
	if err != nil {
		handshakeError(w, http.StatusInternalServerError, scim.HandshakeBadRequest, "internal error")
		return
	}
	for _, s := range servers {
		if s.Hub == nil || s.Hub.HubID != req.HubID || s.Hub.ClientID != req.ClientID {
			continue
		}
		if subtle.ConstantTimeCompare([]byte(s.Token), []byte(req.Token)) != 1 {
			break
		}
		if err := h.Records.DeleteRecord(r.Context(), recordServer, s.ID); err != nil {
			handshakeError(w, http.StatusInternalServerError, scim.HandshakeBadRequest, "internal error")
			return
		}
		h.log().Info("hub undid its registration", "server", s.ID, "hub", s.Hub.HubURL)
		if h.OnChange != nil {
			h.OnChange()
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	handshakeError(w, http.StatusNotFound, scim.HandshakeBadRequest, "no such registration")
}

func (h *Handshake) client() *http.Client {
	if h.HTTPClient != nil {
		return h.HTTPClient
	}
	return &http.Client{Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// fetchMetadata reads the hub's IdP metadata and checks it names entityID.
func (h *Handshake) fetchMetadata(ctx context.Context, u, entityID string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	res, err := h.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch the hub's SAML metadata from %s: %v", u, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch the hub's SAML metadata from %s: HTTP %d", u, res.StatusCode)
	}
	md, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read the hub's SAML metadata: %v", err)
	}
	var ed struct {
		XMLName  xml.Name
		EntityID string `xml:"entityID,attr"`
		IDP      []struct {
			XMLName xml.Name
		} `xml:"IDPSSODescriptor"`
	}
	if err := xml.Unmarshal(md, &ed); err != nil || ed.XMLName.Local != "EntityDescriptor" || len(ed.IDP) == 0 {
		return nil, fmt.Errorf("%s is not SAML IdP metadata", u)
	}
	if ed.EntityID != entityID {
		return nil, fmt.Errorf("the hub's metadata names entity %q, not %q", ed.EntityID, entityID)
	}
	return md, nil
}

func uniqueName(servers []Server, name string) string {
	name = strings.TrimSpace(name)
	taken := func(n string) bool {
		for _, s := range servers {
			if strings.EqualFold(s.Name, n) {
				return true
			}
		}
		return false
	}
	out := name
	for i := 2; taken(out); i++ {
		out = fmt.Sprintf("%s (%d)", name, i)
	}
	return out
}

func putServer(ctx context.Context, r Records, s Server) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := r.PutRecord(ctx, local.Record{Kind: recordServer, Key: s.ID, Value: b}); err != nil {
		return fmt.Errorf("store server: %w", err)
	}
	return nil
}

// MetadataRefresh is the outcome of RefreshHubMetadata for one server.
type MetadataRefresh struct {
	Server  Server
	Changed bool
	Err     error
}

// RefreshHubMetadata fetches the IdP metadata of every server connected by
// the handshake again and replaces the pinned copy when it changed and verify
// (saml/sp.VerifyMetadataUpdate: signed by a key of the pinned copy) accepts
// it. This is how a bridge follows a hub's signing-key rollover: the hub
// publishes the next key before it signs with it. A refused update keeps the
// pinned copy and is reported; the caller logs it.
func RefreshHubMetadata(ctx context.Context, r Records, client *http.Client, verify func(pinned, fresh []byte) error) ([]MetadataRefresh, error) {
	servers, err := ListServers(ctx, r)
	if err != nil {
		return nil, err
	}
	h := &Handshake{HTTPClient: client}
	var out []MetadataRefresh
	for _, s := range servers {
		if s.Hub == nil || s.Hub.MetadataURL == "" {
			continue
		}
		res := MetadataRefresh{Server: s}
		fresh, err := h.fetchMetadata(ctx, s.Hub.MetadataURL, s.Hub.EntityID)
		switch {
		case err != nil:
			res.Err = err
		case bytes.Equal(fresh, s.Hub.Metadata):
		default:
			if err := verify(s.Hub.Metadata, fresh); err != nil {
				res.Err = fmt.Errorf("the hub's new metadata was not accepted: %w", err)
				break
			}
			// Re-read before writing: the server may have been removed or
			// changed meanwhile.
			cur, err := FindServer(ctx, r, s.ID)
			if err != nil || cur.Hub == nil {
				break
			}
			cur.Hub.Metadata = fresh
			if err := putServer(ctx, r, cur); err != nil {
				res.Err = err
				break
			}
			res.Server, res.Changed = cur, true
		}
		out = append(out, res)
	}
	return out, nil
}
