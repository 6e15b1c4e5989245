#!/usr/bin/python3
"""A SAML service provider on python3-lasso (Debian; the library under mod_auth_mellon).

usage: lasso_sp.py CONFIG.json PORT

CONFIG.json as for onelogin_sp.py. Serves /metadata (written here, given to
lasso as the SP's own metadata), /login (a signed HTTP-Redirect AuthnRequest
for a persistent NameID) and /acs, where lasso processes the HTTP-POST
response with signature verification forced and accepts the SSO. The script
then checks what lasso leaves to the caller: InResponseTo against the request
this browser started, the Audience, and the SubjectConfirmation's Recipient.
"""

import json
import os
import sys
import tempfile

import lasso

import sphttp

METADATA = """<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity}">
  <md:SPSSODescriptor AuthnRequestsSigned="true" WantAssertionsSigned="true"
      protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
    </md:KeyDescriptor>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:AssertionConsumerService index="0" isDefault="true"
        Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{base}/acs"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"""


def read(path):
    with open(path) as f:
        return f.read()


def cert_body(pem):
    return "".join(l for l in pem.splitlines() if l and not l.startswith("-----"))


class LassoSP:
    def __init__(self, cfg):
        self.entity = cfg["entityId"]
        self.acs_url = cfg["baseUrl"] + "/acs"
        self.md = METADATA.format(entity=self.entity, cert=cert_body(read(cfg["cert"])), base=cfg["baseUrl"])
        fd, self.md_path = tempfile.mkstemp(suffix=".xml")
        with os.fdopen(fd, "w") as f:
            f.write(self.md)
        self.server = lasso.Server(self.md_path, cfg["key"], None, cfg["cert"])
        # lasso signs with RSA-SHA1 unless told otherwise; SAML IdPs that
        # follow current guidance (the hub among them) refuse SHA-1.
        self.server.signatureMethod = lasso.SIGNATURE_METHOD_RSA_SHA256
        self.server.addProvider(lasso.PROVIDER_ROLE_IDP, cfg["idpMetadata"])
        self.idp = list(self.server.providerIds)[0]

    def metadata(self):
        return self.md

    def login(self, request_data):
        login = lasso.Login(self.server)
        login.initAuthnRequest(self.idp, lasso.HTTP_METHOD_REDIRECT)
        req = login.request
        req.nameIdPolicy.format = lasso.SAML2_NAME_IDENTIFIER_FORMAT_PERSISTENT
        req.nameIdPolicy.allowCreate = True
        req.protocolBinding = lasso.SAML2_METADATA_BINDING_POST
        login.buildAuthnRequestMsg()
        return login.msgUrl, req.iD

    def acs(self, request_data, post, request_id):
        login = lasso.Login(self.server)
        login.setSignatureVerifyHint(lasso.PROFILE_SIGNATURE_VERIFY_HINT_FORCE)
        login.processAuthnResponseMsg(post["SAMLResponse"])  # raises on a refusal
        login.acceptSso()
        resp, a = login.response, login.assertion
        errors = []
        if resp.inResponseTo != request_id:
            errors.append("Response InResponseTo %r, want %r" % (resp.inResponseTo, request_id))
        if resp.destination != self.acs_url:
            errors.append("Response Destination %r, want %r" % (resp.destination, self.acs_url))
        data = a.subject.subjectConfirmation.subjectConfirmationData
        if data.inResponseTo != request_id:
            errors.append("SubjectConfirmationData InResponseTo %r" % data.inResponseTo)
        if data.recipient != self.acs_url:
            errors.append("SubjectConfirmationData Recipient %r, want %r" % (data.recipient, self.acs_url))
        audiences = [r.audience for r in a.conditions.audienceRestriction]  # lasso: one per restriction
        if audiences != [self.entity]:
            errors.append("Audience %r, want [%r]" % (audiences, self.entity))
        if errors:
            return {"ok": False, "errors": errors}
        attributes = {}
        for st in a.attributeStatement:
            for at in st.attribute:
                vals = []
                for v in at.attributeValue:
                    vals.append("".join(x.content for x in v.any if isinstance(x, lasso.MiscTextNode)))
                attributes[at.name] = vals
        nid = login.nameIdentifier
        return {
            "ok": True,
            "nameId": nid.content,
            "nameIdFormat": nid.format,
            "attributes": attributes,
            "sessionIndex": a.authnStatement[0].sessionIndex,
            "notOnOrAfter": a.conditions.notOnOrAfter,
            "relayState": post.get("RelayState", ""),
        }


def main():
    cfg = json.loads(read(sys.argv[1]))
    sphttp.serve(LassoSP(cfg), int(sys.argv[2]))


if __name__ == "__main__":
    main()
