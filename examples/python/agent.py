#!/usr/bin/env python3
"""An agent that reaches PostgreSQL through tokengate with psycopg2, holding no database password.

Each connection is opened with the current access token as the password. The token comes from
the OAuth 2.0 client credentials grant (an Okta service app) and is reused until shortly before
it expires. If the gateway refuses a token (it expired between fetch and use), the agent fetches
a fresh one and connects again, once.

    OIDC_ISSUER=https://acme.okta.com/oauth2/default OIDC_CLIENT_ID=0oa... \\
    OIDC_CLIENT_SECRET_FILE=~/.config/agent/secret \\
    PGHOST=tokengate.internal PGPORT=6432 PGUSER=reader PGDATABASE=app \\
    PGSSLMODE=verify-full PGSSLROOTCERT=/etc/ssl/corp-ca.pem \\
    python3 examples/python/agent.py "select count(*) from orders"

Needs only psycopg2 (Debian: python3-psycopg2; pip: psycopg2-binary) and the standard library.
libpq reads PGHOST, PGPORT, PGUSER, PGDATABASE, PGSSLMODE and PGSSLROOTCERT itself.
"""
import base64
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import psycopg2

# SQLSTATE tokengate uses when it refuses the token itself (expired, wrong audience, ...).
TOKEN_REFUSED = "28P01"


class ClientCredentialsTokenSource:
    """One access token at a time, refreshed `refresh_before` seconds before it expires."""

    def __init__(self, client_id, client_secret, issuer=None, token_url=None, scope="db.connect", refresh_before=120):
        if not (issuer or token_url):
            raise SystemExit("set OIDC_ISSUER (or OIDC_TOKEN_URL) to your authorization server")
        if not (client_id and client_secret):
            raise SystemExit("set OIDC_CLIENT_ID and OIDC_CLIENT_SECRET_FILE (or OIDC_CLIENT_SECRET)")
        self.client_id, self.client_secret = client_id, client_secret
        self.issuer, self.token_url, self.scope = issuer, token_url, scope
        self.refresh_before = refresh_before
        self.requests = 0
        self._token, self._expires_at = None, 0.0
        self._lock = threading.Lock()

    def _discover(self):
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        with urllib.request.urlopen(url, timeout=10) as res:
            return json.load(res)["token_endpoint"]

    def token(self, force=False):
        with self._lock:
            if force or self._token is None or self._expires_at - self.refresh_before <= time.time():
                self._fetch()
            return self._token

    def _fetch(self):
        self.token_url = self.token_url or self._discover()
        form = lambda v: urllib.parse.quote_plus(v)  # application/x-www-form-urlencoded, RFC 6749 2.3.1
        basic = base64.b64encode(f"{form(self.client_id)}:{form(self.client_secret)}".encode()).decode()
        body = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": self.scope}).encode()
        req = urllib.request.Request(self.token_url, data=body, method="POST", headers={
            "Authorization": "Basic " + basic,
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        })
        self.requests += 1
        try:
            with urllib.request.urlopen(req, timeout=10) as res:
                payload = json.load(res)
        except urllib.error.HTTPError as err:
            detail = json.loads(err.read() or b"{}")  # the IdP's error and error_description, never the secret
            raise SystemExit(f"token request failed: HTTP {err.code} {detail.get('error', '')}: {detail.get('error_description', '')}")
        self._token = payload["access_token"]
        self._expires_at = time.time() + float(payload.get("expires_in", 300))


def token_source_from_env(env=os.environ):
    secret = env.get("OIDC_CLIENT_SECRET")
    if env.get("OIDC_CLIENT_SECRET_FILE"):
        with open(os.path.expanduser(env["OIDC_CLIENT_SECRET_FILE"])) as f:
            secret = f.read().strip()
    return ClientCredentialsTokenSource(
        client_id=env.get("OIDC_CLIENT_ID"), client_secret=secret,
        issuer=env.get("OIDC_ISSUER"), token_url=env.get("OIDC_TOKEN_URL"),
        scope=env.get("OIDC_SCOPE", "db.connect"),
    )


def connect(tokens):
    """A new connection through the gateway; one retry with a fresh token if the token was refused."""
    try:
        return psycopg2.connect(password=tokens.token(), application_name="python-agent")
    except psycopg2.OperationalError as err:
        if getattr(err, "pgcode", None) != TOKEN_REFUSED and "access token" not in str(err):
            raise
        return psycopg2.connect(password=tokens.token(force=True), application_name="python-agent")


def main(argv):
    queries = argv[1:] or ["select current_user, current_setting('application_name')"]
    tokens = token_source_from_env()
    for sql in queries:
        # A connection per task: short sessions never outlive their token.
        conn = connect(tokens)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(sql)
                rows = cur.fetchall() if cur.description else []
                print(json.dumps({"query": sql, "rows": rows}, default=str))
        finally:
            conn.close()
    print(f"token requests: {tokens.requests}", file=sys.stderr)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except psycopg2.Error as err:
        # The gateway's refusals say what was wrong and what to do; show them as they are.
        print(f"agent: {str(err).strip()}", file=sys.stderr)
        sys.exit(1)
