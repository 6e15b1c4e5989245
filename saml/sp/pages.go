package sp

import (
	"html/template"
	"net/http"
)

// The pages are small and self-contained (no external assets), so they work
// behind any proxy and under a strict Content-Security-Policy.
var pages = template.Must(template.New("").Parse(`
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f4f5f7;margin:0;color:#1d2433}
main{max-width:26rem;margin:4rem auto;background:#fff;border-radius:8px;padding:2rem;box-shadow:0 1px 4px rgba(0,0,0,.12)}
h1{font-size:1.35rem;margin:0 0 1.2rem}
.hub{display:block;text-align:center;background:#2456c9;color:#fff;text-decoration:none;padding:.75rem;border-radius:6px;margin:.6rem 0;font-weight:600}
.hub:hover{background:#1b43a0}
label{display:block;margin:.8rem 0 .25rem;font-size:.9rem}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.55rem;border:1px solid #b8bfcc;border-radius:5px;font-size:1rem}
button{margin-top:1rem;padding:.6rem 1.2rem;border:0;border-radius:5px;background:#3b4252;color:#fff;font-size:1rem;cursor:pointer}
.or{text-align:center;color:#6b7385;margin:1.4rem 0 .4rem;font-size:.9rem}
.msg{background:#fdecea;border-left:4px solid #c62828;padding:.6rem .8rem;margin-bottom:1rem}
.note{background:#e8f4ea;border-left:4px solid #2e7d32;padding:.6rem .8rem;margin-bottom:1rem}
</style></head><body><main>{{end}}

{{define "login"}}{{template "head" .}}
<h1>Log in to {{.Site}}</h1>
{{if .Note}}<p class="note" id="note">{{.Note}}</p>{{end}}
{{if .Error}}<p class="msg" id="error" role="alert">{{.Error}}</p>{{end}}
{{range .Hubs}}<a class="hub" id="hub-{{.ID}}" href="{{.Href}}">Log in using your account on: {{.Name}}</a>
{{end}}
{{if .Local}}{{if .Hubs}}<p class="or">or with an account of this site</p>{{end}}
<form method="post" action="/login" id="local-login">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="rd" value="{{.ReturnTo}}">
<label for="username">Username</label><input type="text" id="username" name="username" value="{{.Username}}" autocomplete="username" required>
<label for="password">Password</label><input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit" id="login-submit">Log in</button>
</form>{{end}}
{{if and (not .Hubs) (not .Local)}}<p>No login method is available. Ask the site's administrator.</p>{{end}}
</main></body></html>{{end}}

{{define "message"}}{{template "head" .}}
<h1>{{.Title}}</h1>
<p id="message">{{.Message}}</p>
{{if .Link}}<p><a href="{{.Link}}" id="continue">{{.LinkText}}</a></p>{{end}}
</main></body></html>{{end}}

{{define "logout"}}{{template "head" .}}
<h1>Log out of {{.Site}}?</h1>
<form method="post" action="/logout">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="rd" value="{{.ReturnTo}}">
<button type="submit" id="logout-submit">Log out</button>
</form>
</main></body></html>{{end}}
`))

type hubButton struct{ ID, Name, Href string }

type loginPage struct {
	Title, Site    string
	Hubs           []hubButton
	Local          bool
	CSRF, ReturnTo string
	Username       string
	Error, Note    string
}

type messagePage struct {
	Title, Message string
	Link, LinkText string
}

type logoutPage struct {
	Title, Site, CSRF, ReturnTo string
}

func render(w http.ResponseWriter, status int, name string, data any) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "same-origin")
	w.WriteHeader(status)
	_ = pages.ExecuteTemplate(w, name, data)
}

// message shows a page with a title and a sentence, and a link back to the
// login page.
func (s *SP) message(w http.ResponseWriter, status int, title, msg string) {
	render(w, status, "message", messagePage{Title: title, Message: msg, Link: PathLogin, LinkText: "Back to the login page"})
}
