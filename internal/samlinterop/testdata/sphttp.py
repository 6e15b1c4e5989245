"""A tiny HTTP front for the Python SAML service providers of the interop tests.

Each SP script supplies the handlers metadata, login and acs (and, for single
logout, logout and sls); this module runs them on a loopback port behind the
routes /metadata, /login and /acs (/logout, /sls), keeps the pending request ID
and the login per browser in a cookie (as a real SP does), and answers the ACS
with JSON: {"ok": true, "nameId": ..., "attributes": {...}} or {"ok": false,
"errors": [...]} with status 403. /events lists what /sls saw, as JSON.

Only the standard library; the SAML work is the caller's.
"""

import http.cookies
import http.server
import json
import secrets
import sys
import traceback
import urllib.parse

COOKIE = "pysp_state"


class _Handler(http.server.BaseHTTPRequestHandler):
    sp = None  # set by serve()
    pending = {}  # state cookie -> AuthnRequest ID
    sessions = {}  # state cookie -> the ACS result of its login
    pending_logout = {}  # state cookie -> LogoutRequest ID
    events = []  # what /sls processed: {"kind", "ok", "errors"}

    def log_message(self, fmt, *args):  # to stderr, for the test log
        sys.stderr.write("pysp: " + (fmt % args) + "\n")

    def _send(self, status, body, ctype="application/json", headers=()):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _request_data(self, post=None):
        u = urllib.parse.urlsplit(self.path)
        return {
            "https": "off",
            "http_host": self.headers.get("Host", ""),
            "script_name": u.path,
            "get_data": dict(urllib.parse.parse_qsl(u.query)),
            "post_data": post or {},
        }

    def _state(self):
        jar = http.cookies.SimpleCookie(self.headers.get("Cookie", ""))
        return jar[COOKIE].value if COOKIE in jar else ""

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/events":
            self._send(200, json.dumps(_Handler.events))
        elif path == "/logout":
            state = self._state()
            session = _Handler.sessions.get(state)
            if session is None:
                self._send(403, json.dumps({"ok": False, "errors": ["not logged in"]}))
                return
            url, request_id = self.sp.logout(self._request_data(), session)
            _Handler.pending_logout[state] = request_id
            self._send(302, "", "text/plain", [("Location", url)])
        elif path == "/sls":
            state = self._state()
            data = self._request_data()
            kind = "LogoutResponse" if "SAMLResponse" in data["get_data"] else "LogoutRequest"
            try:
                errors, url = self.sp.sls(data, _Handler.pending_logout.pop(state, None))
            except Exception as e:
                traceback.print_exc()
                errors, url = ["%s: %s" % (type(e).__name__, e)], None
            _Handler.events.append({"kind": kind, "ok": not errors, "errors": errors})
            if not errors:
                _Handler.sessions.pop(state, None)
            if url:  # a LogoutResponse back to the IdP
                self._send(302, "", "text/plain", [("Location", url)])
            else:
                self._send(200 if not errors else 403, json.dumps({"ok": not errors, "kind": kind, "errors": errors}))
        elif path == "/metadata":
            self._send(200, self.sp.metadata(), "application/samlmetadata+xml")
        elif path == "/login":
            url, request_id = self.sp.login(self._request_data())
            state = secrets.token_urlsafe(16)
            _Handler.pending[state] = request_id
            self._send(302, "", "text/plain", [
                ("Location", url),
                ("Set-Cookie", "%s=%s; Path=/; HttpOnly; SameSite=None" % (COOKIE, state)),
            ])
        else:
            self._send(404, json.dumps({"ok": False, "errors": ["not found"]}))

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        if path != "/acs":
            self._send(404, json.dumps({"ok": False, "errors": ["not found"]}))
            return
        n = int(self.headers.get("Content-Length", "0"))
        post = dict(urllib.parse.parse_qsl(self.rfile.read(n).decode()))
        state = self._state()
        # One use per request ID: a replayed response finds nothing pending.
        request_id = _Handler.pending.pop(state, None)
        if request_id is None:
            self._send(403, json.dumps({"ok": False, "errors": ["no pending AuthnRequest for this browser"]}))
            return
        try:
            result = self.sp.acs(self._request_data(post), post, request_id)
        except Exception as e:  # the SP library's refusal, reported to the test
            traceback.print_exc()
            result = {"ok": False, "errors": ["%s: %s" % (type(e).__name__, e)]}
        result["requestId"] = request_id
        if result.get("ok"):
            _Handler.sessions[state] = result
        self._send(200 if result.get("ok") else 403, json.dumps(result, sort_keys=True))


def serve(sp, port):
    """Serve sp on 127.0.0.1:port until killed."""
    _Handler.sp = sp
    srv = http.server.HTTPServer(("127.0.0.1", port), _Handler)
    sys.stderr.write("pysp: listening on 127.0.0.1:%d\n" % port)
    sys.stderr.flush()
    srv.serve_forever()
