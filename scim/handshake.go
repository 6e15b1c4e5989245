package scim

// The setup-secret handshake (DESIGN.md §5) on the wire. The hub calls the
// bridge's RegisterPath with a RegisterRequest; the bridge answers a
// RegisterResponse, or a HandshakeError with a 4xx status. These shapes are a
// contract between hub and bridge releases: extend them, never rename.

// Handshake endpoints on the bridge, below its Client URL.
const (
	RegisterPath   = "/connect/v1/register"
	UnregisterPath = "/connect/v1/unregister"
)

// DisconnectPath is the hub endpoint a bridge calls (POST, with its bridge
// token as the bearer) when its operator removes the server: the hub removes
// the client system, revokes the token and unregisters the bridge's SP.
const DisconnectPath = "/connect/v1/disconnect"

// RegisterRequest is what the hub sends to complete a connection.
type RegisterRequest struct {
	Secret      string `json:"secret"`
	HubID       string `json:"hubId"`
	HubName     string `json:"hubName"`
	HubURL      string `json:"hubUrl"`
	EntityID    string `json:"entityId"`
	MetadataURL string `json:"metadataUrl"`
	SCIMURL     string `json:"scimUrl"`
	ClientID    string `json:"clientId"`
	Token       string `json:"token"`
}

// RegisterResponse is the bridge's answer: the server id it stored and its SAML
// SP metadata (XML), which the hub registers with its IdP.
type RegisterResponse struct {
	ServerID   string `json:"serverId"`
	SPEntityID string `json:"spEntityId"`
	SPMetadata string `json:"spMetadata"`
}

// UnregisterRequest undoes a registration (the hub could not finish its side,
// or removed the client). The bridge checks Token against the one it stored.
type UnregisterRequest struct {
	HubID    string `json:"hubId"`
	ClientID string `json:"clientId"`
	Token    string `json:"token"`
}

// HandshakeError is the body of a refused handshake request.
type HandshakeError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Handshake error codes.
const (
	HandshakeBadSecret        = "secret_invalid" // unknown, already used or expired: the bridge does not say which
	HandshakeAlreadyConnected = "already_connected"
	HandshakeHubUnreachable   = "hub_unreachable" // the bridge could not fetch the hub's metadata
	HandshakeIsHub            = "is_hub"          // the Client URL is a hub, not a bridge
	HandshakeBadRequest       = "bad_request"
)
