#!/usr/bin/python3
"""A SAML service provider on python3-onelogin-saml2 (Debian), in strict mode.

usage: onelogin_sp.py CONFIG.json PORT

CONFIG.json: {"entityId", "baseUrl" (http://localhost:PORT), "cert", "key"
(PEM file paths), "idpMetadata" (path of the IdP's metadata XML)}.

Serves /metadata, /login (a signed HTTP-Redirect AuthnRequest asking for a
persistent NameID) and /acs, which validates the HTTP-POST response with
InResponseTo checked against the request this browser started, requiring the
response and the assertion to be signed with RSA-SHA256/SHA-256. Single
logout: /logout sends a signed LogoutRequest (HTTP-Redirect) for the
browser's login; /sls validates the IdP's signed LogoutResponse (InResponseTo
checked) or LogoutRequest, answering the latter with a signed LogoutResponse.
"""

import json
import sys

from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.settings import OneLogin_Saml2_Settings

import sphttp


def read(path):
    with open(path) as f:
        return f.read()


class OneLoginSP:
    def __init__(self, cfg):
        base = cfg["baseUrl"]
        settings = {
            "strict": True,
            "debug": False,
            "sp": {
                "entityId": cfg["entityId"],
                "assertionConsumerService": {"url": base + "/acs", "binding": C.BINDING_HTTP_POST},
                "singleLogoutService": {"url": base + "/sls", "binding": C.BINDING_HTTP_REDIRECT},
                "NameIDFormat": C.NAMEID_PERSISTENT,
                "x509cert": read(cfg["cert"]),
                "privateKey": read(cfg["key"]),
            },
            "security": {
                "authnRequestsSigned": True,
                "logoutRequestSigned": True,
                "logoutResponseSigned": True,
                "wantMessagesSigned": True,
                "wantAssertionsSigned": True,
                "wantNameId": True,
                "wantAttributeStatement": True,
                "signatureAlgorithm": C.RSA_SHA256,
                "digestAlgorithm": C.SHA256,
                "requestedAuthnContext": False,
                "allowSingleLabelDomains": True,  # the SP is http://localhost:PORT
            },
        }
        idp = OneLogin_Saml2_IdPMetadataParser.parse(read(cfg["idpMetadata"]))
        self.settings = OneLogin_Saml2_IdPMetadataParser.merge_settings(settings, idp)
        # Fail at start, not at the first request, on settings the library refuses.
        OneLogin_Saml2_Settings(self.settings)

    def metadata(self):
        s = OneLogin_Saml2_Settings(self.settings, sp_validation_only=True)
        md = s.get_sp_metadata()
        errors = s.validate_metadata(md)
        if errors:
            raise ValueError("own metadata invalid: %s" % errors)
        return md

    def login(self, request_data):
        auth = OneLogin_Saml2_Auth(request_data, self.settings)
        url = auth.login(return_to="/after-login")
        return url, auth.get_last_request_id()

    def acs(self, request_data, post, request_id):
        auth = OneLogin_Saml2_Auth(request_data, self.settings)
        auth.process_response(request_id=request_id)
        errors = auth.get_errors()
        if errors or not auth.is_authenticated():
            return {"ok": False, "errors": errors, "reason": auth.get_last_error_reason()}
        return {
            "ok": True,
            "nameId": auth.get_nameid(),
            "nameIdFormat": auth.get_nameid_format(),
            "attributes": auth.get_attributes(),
            "sessionIndex": auth.get_session_index(),
            "nameIdNQ": auth.get_nameid_nq(),
            "nameIdSPNQ": auth.get_nameid_spnq(),
            "relayState": post.get("RelayState", ""),
        }

    def logout(self, request_data, session):
        auth = OneLogin_Saml2_Auth(request_data, self.settings)
        url = auth.logout(
            return_to="/logged-out",
            name_id=session["nameId"],
            session_index=session["sessionIndex"],
            nq=session.get("nameIdNQ"),
            name_id_format=session["nameIdFormat"],
            spnq=session.get("nameIdSPNQ"),
        )
        return url, auth.get_last_request_id()

    def sls(self, request_data, request_id):
        """Returns (errors, URL to send the browser to or None)."""
        auth = OneLogin_Saml2_Auth(request_data, self.settings)
        url = auth.process_slo(keep_local_session=True, request_id=request_id)
        errors = auth.get_errors()
        if errors:
            errors = errors + [auth.get_last_error_reason() or ""]
        return errors, url


def main():
    cfg = json.loads(read(sys.argv[1]))
    sphttp.serve(OneLoginSP(cfg), int(sys.argv[2]))


if __name__ == "__main__":
    main()
