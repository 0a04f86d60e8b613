#!/usr/bin/env python3
"""Checks an autoconfig answer against the formats the mail clients
document, reading stdin:

  autoconfig_check.py thunderbird   Mozilla's ISP database format,
      https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat
      (clientConfig version 1.1; emailProvider with domain, displayName,
      displayShortName; incomingServer imap/pop3 and outgoingServer smtp,
      each with hostname, port, socketType, authentication, username)
  autoconfig_check.py autodiscover  Outlook's POX Autodiscover response
      ([MS-OXDSCLI] 2006 response schema and its outlook 2006a part)

Prints "ok" and one line per server, or exits non-zero naming the problem.
Standard library only."""
import sys
import xml.etree.ElementTree as ET

SOCKET_TYPES = {"plain", "SSL", "STARTTLS"}
AUTHS = {"password-cleartext", "password-encrypted", "NTLM", "GSSAPI",
         "client-IP-address", "TLS-client-cert", "OAuth2", "none"}
PLACEHOLDERS = ("%EMAILADDRESS%", "%EMAILLOCALPART%", "%EMAILDOMAIN%")


def fail(why):
    sys.exit(f"invalid: {why}")


def one(parent, tag):
    found = parent.findall(tag)
    if len(found) != 1 or not (found[0].text or "").strip():
        fail(f"<{parent.tag}> needs exactly one non-empty <{tag}>")
    return found[0].text.strip()


def server(el, kinds):
    kind = el.get("type")
    if kind not in kinds:
        fail(f"<{el.tag} type={kind!r}>: type must be one of {sorted(kinds)}")
    host = one(el, "hostname")
    port = one(el, "port")
    if not port.isdigit() or not 0 < int(port) < 65536:
        fail(f"port {port!r}")
    sock = one(el, "socketType")
    if sock not in SOCKET_TYPES:
        fail(f"socketType {sock!r}")
    auths = [a.text.strip() for a in el.findall("authentication")]
    if not auths or any(a not in AUTHS for a in auths):
        fail(f"authentication {auths!r}")
    user = one(el, "username")
    if "%" in user and not any(p in user for p in PLACEHOLDERS):
        fail(f"username {user!r} has an unknown placeholder")
    return f"{el.tag} {kind} {host}:{port} {sock} {','.join(auths)} {user}"


def thunderbird(root):
    if root.tag != "clientConfig" or root.get("version") != "1.1":
        fail("root must be <clientConfig version=\"1.1\">")
    providers = root.findall("emailProvider")
    if len(providers) != 1 or not providers[0].get("id"):
        fail("one <emailProvider id=...>")
    p = providers[0]
    if not p.findall("domain"):
        fail("<domain> missing")
    one(p, "displayName")
    one(p, "displayShortName")
    incoming = [server(e, {"imap", "pop3"}) for e in p.findall("incomingServer")]
    outgoing = [server(e, {"smtp"}) for e in p.findall("outgoingServer")]
    if not incoming or not outgoing:
        fail("at least one incomingServer and one outgoingServer")
    return incoming + outgoing


NS = "{http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006}"
NSA = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"


def autodiscover(root):
    if root.tag != NS + "Autodiscover":
        fail(f"root {root.tag}")
    resp = root.find(NSA + "Response")
    if resp is None:
        fail("no outlook 2006a <Response>")
    acc = resp.find(NSA + "Account")
    if acc is None:
        fail("no <Account>")
    if one(acc, NSA + "AccountType") != "email" or one(acc, NSA + "Action") != "settings":
        fail("AccountType email and Action settings")
    out = []
    for p in acc.findall(NSA + "Protocol"):
        kind = one(p, NSA + "Type")
        if kind not in {"IMAP", "POP3", "SMTP"}:
            fail(f"Type {kind}")
        host = one(p, NSA + "Server")
        port = one(p, NSA + "Port")
        if not port.isdigit():
            fail(f"Port {port}")
        login = one(p, NSA + "LoginName")
        ssl = p.find(NSA + "SSL")
        enc = p.find(NSA + "Encryption")
        if ssl is None and enc is None:
            fail("SSL or Encryption")
        if ssl is not None and ssl.text not in {"on", "off"}:
            fail(f"SSL {ssl.text}")
        if enc is not None and enc.text not in {"None", "SSL", "TLS", "Auto"}:
            fail(f"Encryption {enc.text}")
        out.append(f"{kind} {host}:{port} {login}")
    if not out:
        fail("no <Protocol>")
    return out


if __name__ == "__main__":
    root = ET.fromstring(sys.stdin.buffer.read())
    lines = {"thunderbird": thunderbird, "autodiscover": autodiscover}[sys.argv[1]](root)
    print("ok")
    print("\n".join(lines))
