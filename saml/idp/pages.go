package idp

import (
	"bytes"
	"html/template"
	"net/http"
)

// Login form field names (stable: see the package documentation).
const (
	FieldUserName  = "username"
	FieldPassword  = "password"
	FieldCSRF      = "csrf_token"
	FieldSAMLKind  = "saml_kind"
	FieldSAMLQuery = "saml_query"
	FieldSAMLForm  = "saml_form"
)

// LoginFailedMessage is the one message every failed login shows.
const LoginFailedMessage = "Login failed: the user name or password is wrong, or the account is temporarily locked. Try again later."

const pageStyle = `body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0}
main{max-width:24rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002}
h1{font-size:1.3rem;margin-top:0}label{display:block;margin:.8rem 0 .2rem}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem}
button{margin-top:1.2rem;padding:.6rem 1.2rem;font-size:1rem}
.error{color:#a00;background:#fee;padding:.6rem;border-radius:4px}
.muted{color:#666;font-size:.9rem}`

var loginTemplate = template.Must(template.New("login").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in – {{.Hub}}</title><style>` + pageStyle + `</style></head>
<body><main>
<h1>Log in to {{.Hub}}</h1>
{{if .For}}<p class="muted">to continue to {{.For}}</p>{{end}}
{{if .Error}}<p class="error" id="login-error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}" id="login-form" autocomplete="on">
<input type="hidden" name="csrf_token" value="{{.CSRF}}">
<input type="hidden" name="saml_kind" value="{{.Pending.Kind}}">
<input type="hidden" name="saml_query" value="{{.Pending.Query}}">
<input type="hidden" name="saml_form" value="{{.Pending.Form}}">
<label for="username">User name</label>
<input type="text" id="username" name="username" value="{{.UserName}}" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit" id="login-submit">Log in</button>
</form>
{{if .UpstreamName}}<p><a id="upstream-login" href="{{.UpstreamLink}}">Log in with {{.UpstreamName}}</a></p>{{end}}
</main></body></html>`))

var messageTemplate = template.Must(template.New("message").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} – {{.Hub}}</title><style>` + pageStyle + `</style></head>
<body><main>
<h1 id="title">{{.Title}}</h1>
<p id="message"{{if .IsError}} class="error" role="alert"{{end}}>{{.Message}}</p>
{{if .Logout}}<form method="post" action="{{.Logout}}"><input type="hidden" name="csrf_token" value="{{.CSRF}}"><button type="submit" id="logout-submit">Log out</button></form>{{end}}
</main></body></html>`))

// resubmitTemplate posts a SAML request to the hub from the hub's own page.
var resubmitTemplate = template.Must(template.New("resubmit").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Continue</title></head>
<body><form method="post" action="{{.Action}}" id="resubmit-form">
{{range $k, $v := .Fields}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}<noscript><button type="submit">Continue</button></noscript></form>
<script>document.getElementById("resubmit-form").submit();</script>
</body></html>`))

type resubmitPage struct {
	Action string
	Fields map[string]string
}

type loginPage struct {
	Hub, For, Error, Action, CSRF, UserName string
	Pending                                 pending
	UpstreamName, UpstreamLink              string
}

type messagePage struct {
	Hub, Title, Message, Logout, CSRF string
	IsError                           bool
}

func writeHTML(w http.ResponseWriter, status int, t *template.Template, data any) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage shows a refusal: a title and a plain explanation, never the
// internal cause (that is logged).
func (p *IdP) errorPage(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	writeHTML(w, status, messageTemplate, messagePage{Hub: p.cfg.Name, Title: title, Message: msg, IsError: true})
}
