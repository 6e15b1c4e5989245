package samlinterop

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// browser is an HTTP client that behaves like a browser for SAML web SSO: it
// keeps cookies, follows redirects, reads forms out of pages and submits them
// with the Origin and Sec-Fetch-Site headers a browser sends.
type browser struct {
	tb testing.TB
	c  *http.Client
}

func newBrowser(tb testing.TB) *browser {
	tb.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return &browser{tb: tb, c: &http.Client{Jar: jar, Timeout: 20 * time.Second}}
}

// page is a fetched document.
type page struct {
	URL    *url.URL
	Status int
	Body   string
	Forms  []form
}

// form is an HTML form with its action resolved against the page URL.
type form struct {
	Action string
	Method string
	Inputs []input
}

type input struct{ Name, Type, Value string }

// value returns the value of the first input called name.
func (f form) value(name string) (string, bool) {
	for _, in := range f.Inputs {
		if in.Name == name {
			return in.Value, true
		}
	}
	return "", false
}

// has reports whether the form has an input called name.
func (f form) has(name string) bool { _, ok := f.value(name); return ok }

func (b *browser) do(req *http.Request) *page {
	b.tb.Helper()
	req.Header.Set("User-Agent", "connect-samlinterop/1 (like a browser)")
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*")
	resp, err := b.c.Do(req)
	if err != nil {
		b.tb.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		b.tb.Fatalf("%s %s: read: %v", req.Method, req.URL, err)
	}
	p := &page{URL: resp.Request.URL, Status: resp.StatusCode, Body: string(data)}
	p.Forms = parseForms(p.URL, p.Body)
	return p
}

// get loads url, following redirects.
func (b *browser) get(rawURL string) *page {
	b.tb.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		b.tb.Fatal(err)
	}
	return b.do(req)
}

// submit sends f from page from with its inputs, overridden by set (a GET form
// puts them in the query).
func (b *browser) submit(from *page, f form, set map[string]string) *page {
	b.tb.Helper()
	vals := url.Values{}
	done := map[string]bool{}
	for _, in := range f.Inputs {
		if in.Name == "" || in.Type == "submit" || in.Type == "button" || in.Type == "image" {
			continue
		}
		if v, ok := set[in.Name]; ok {
			if !done[in.Name] {
				vals.Add(in.Name, v)
				done[in.Name] = true
			}
			continue
		}
		vals.Add(in.Name, in.Value)
	}
	for k, v := range set {
		if !done[k] && !f.has(k) {
			vals.Set(k, v)
		}
	}
	var req *http.Request
	var err error
	if strings.EqualFold(f.Method, http.MethodGet) {
		u, perr := url.Parse(f.Action)
		if perr != nil {
			b.tb.Fatal(perr)
		}
		u.RawQuery = vals.Encode()
		req, err = http.NewRequest(http.MethodGet, u.String(), nil)
	} else {
		req, err = http.NewRequest(http.MethodPost, f.Action, strings.NewReader(vals.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", from.URL.Scheme+"://"+from.URL.Host)
		}
	}
	if err != nil {
		b.tb.Fatal(err)
	}
	if to, err := url.Parse(f.Action); err == nil && to.Scheme == from.URL.Scheme && to.Host == from.URL.Host {
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	} else {
		req.Header.Set("Sec-Fetch-Site", "cross-site")
	}
	req.Header.Set("Referer", from.URL.String())
	return b.do(req)
}

// formWith returns the first form of p with an input called name.
func (p *page) formWith(name string) (form, bool) {
	for _, f := range p.Forms {
		if f.has(name) {
			return f, true
		}
	}
	return form{}, false
}

// loginForm returns p's form with a password input and the names of its
// username and password inputs.
func (p *page) loginForm() (f form, user, pass string, ok bool) {
	for _, f := range p.Forms {
		user, pass = "", ""
		for _, in := range f.Inputs {
			switch {
			case in.Type == "password" && pass == "":
				pass = in.Name
			case (in.Type == "text" || in.Type == "email" || in.Type == "") && user == "" &&
				(strings.Contains(strings.ToLower(in.Name), "user") || strings.Contains(strings.ToLower(in.Name), "login")):
				user = in.Name
			}
		}
		if pass != "" && user != "" {
			return f, user, pass, true
		}
	}
	return form{}, "", "", false
}

// linkContaining returns, as a form to follow, the first link (<a href>) or
// form of p whose target contains substr; a link has an empty Method.
func (p *page) linkContaining(substr string) (form, bool) {
	for _, m := range linkRE.FindAllStringSubmatch(p.Body, -1) {
		if href := attrs(m[1])["href"]; strings.Contains(href, substr) {
			if u, err := p.URL.Parse(href); err == nil {
				return form{Action: u.String()}, true
			}
		}
	}
	for _, f := range p.Forms {
		if strings.Contains(f.Action, substr) {
			return f, true
		}
	}
	return form{}, false
}

// String describes a page for failure messages.
func (p *page) String() string {
	body := p.Body
	if len(body) > 3000 {
		body = body[:3000] + "…"
	}
	return fmt.Sprintf("%d at %s:\n%s", p.Status, p.URL, body)
}

var (
	linkRE  = regexp.MustCompile(`(?is)<a\b([^>]*)>`)
	formRE  = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form\s*>`)
	inputRE = regexp.MustCompile(`(?is)<(input|button|textarea)\b([^>]*)>`)
	attrRE  = regexp.MustCompile(`(?s)([a-zA-Z_:][-a-zA-Z0-9_:.]*)\s*=\s*("([^"]*)"|'([^']*)'|([^\s"'>]+))`)
)

func attrs(s string) map[string]string {
	m := map[string]string{}
	for _, a := range attrRE.FindAllStringSubmatch(s, -1) {
		name := strings.ToLower(a[1])
		if _, dup := m[name]; dup {
			continue
		}
		m[name] = html.UnescapeString(a[3] + a[4] + a[5])
	}
	return m
}

// parseForms reads the forms of an HTML page. It is enough for the pages of
// IdPs and SPs (a login form, an auto-submitting SAML POST form), not a
// general HTML parser.
func parseForms(base *url.URL, body string) []form {
	var out []form
	for _, m := range formRE.FindAllStringSubmatch(body, -1) {
		fa := attrs(m[1])
		action := base.String()
		if a, ok := fa["action"]; ok && a != "" {
			if u, err := base.Parse(a); err == nil {
				action = u.String()
			}
		}
		method := strings.ToUpper(fa["method"])
		if method == "" {
			method = http.MethodGet
		}
		f := form{Action: action, Method: method}
		for _, im := range inputRE.FindAllStringSubmatch(m[2], -1) {
			ia := attrs(im[2])
			typ := strings.ToLower(ia["type"])
			if strings.EqualFold(im[1], "button") && typ == "" {
				typ = "submit"
			}
			f.Inputs = append(f.Inputs, input{Name: ia["name"], Type: typ, Value: ia["value"]})
		}
		out = append(out, f)
	}
	return out
}

// ssoLogin starts at start (an SP page that sends the browser to the IdP),
// logs in at the IdP's form as u, and submits the SAML response form the IdP
// answers with to the SP. It returns the SAMLResponse (base64) and the SP's
// answer to it.
func ssoLogin(tb testing.TB, b *browser, start string, user, password string) (samlResponse string, final *page) {
	tb.Helper()
	p := b.get(start)
	p = followSAMLRequestForms(b, p)
	f, userField, passField, ok := p.loginForm()
	if !ok {
		tb.Fatalf("no login form after GET %s; got %s", start, p)
	}
	p = b.submit(p, f, map[string]string{userField: user, passField: password})
	return postSAMLResponse(tb, b, p)
}

// followSAMLRequestForms submits the auto-posting forms that carry a
// SAMLRequest (an SP's HTTP-POST binding page) as a browser's script would.
func followSAMLRequestForms(b *browser, p *page) *page {
	b.tb.Helper()
	for i := 0; i < 3; i++ {
		f, ok := p.formWith("SAMLRequest")
		if !ok || f.has("password") {
			return p
		}
		p = b.submit(p, f, nil)
	}
	return p
}

// postSAMLResponse submits p's SAMLResponse form (the IdP's HTTP-POST binding
// page) and returns the response and the SP's answer.
func postSAMLResponse(tb testing.TB, b *browser, p *page) (string, *page) {
	tb.Helper()
	f, ok := p.formWith("SAMLResponse")
	if !ok {
		tb.Fatalf("no SAMLResponse form; got %s", p)
	}
	resp, _ := f.value("SAMLResponse")
	return resp, b.submit(p, f, nil)
}
