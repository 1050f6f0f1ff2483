# Source this file to use psql (or any libpq program) through tokengate with an Okta token:
#
#   export OIDC_ISSUER=https://acme.okta.com/oauth2/default OIDC_CLIENT_ID=0oa1b2c3d4e5f6g7h8i9
#   export OIDC_CLIENT_SECRET_FILE=~/.config/tokengate/client-secret      # chmod 600
#   export TOKENGATE_HOST=tokengate.internal TOKENGATE_CA=/etc/ssl/certs/corp-ca.pem
#   . examples/psql/tokengate-env.sh
#   tgpsql -c 'select current_user'          # a fresh (or cached) token for every run
#   psql -c 'select 1'                       # PGPASSWORD as of sourcing (valid for the token lifetime)
#
# The token is cached in a 0600 file and reused until 60 s before it expires, so tgpsql costs
# one token request per token lifetime. TOKENGATE names the tokengate command; without it the
# script uses `tokengate` from PATH, else the clone it lives in (bash), else `npx tokengate`.

: "${OIDC_ISSUER:?set OIDC_ISSUER to your Okta custom authorization server, e.g. https://acme.okta.com/oauth2/default}"
: "${OIDC_CLIENT_ID:?set OIDC_CLIENT_ID to the service app client id}"
: "${OIDC_CLIENT_SECRET_FILE:?set OIDC_CLIENT_SECRET_FILE to a file holding the client secret (chmod 600)}"
: "${TOKENGATE_HOST:?set TOKENGATE_HOST to the gateway host name on its certificate}"
: "${TOKENGATE_CA:?set TOKENGATE_CA to the CA certificate that signed the gateway certificate}"

export PGHOST="$TOKENGATE_HOST"
export PGPORT="${TOKENGATE_PORT:-6432}"
export PGUSER="${TOKENGATE_ROLE:-reader}"        # the role your grant allows, not a database user
export PGDATABASE="${TOKENGATE_DATABASE:-app}"   # a database alias from the gateway config
export PGSSLMODE=verify-full                     # the token is a bearer credential: verify who gets it
export PGSSLROOTCERT="$TOKENGATE_CA"

# This file's clone, for running tokengate from it (bash knows where a sourced file is).
_tokengate_clone="$(cd "$(dirname "${BASH_SOURCE[0]:-.}")/../.." 2>/dev/null && pwd)"

_tokengate() {
  if [ -n "${TOKENGATE:-}" ]; then ${TOKENGATE} "$@"
  elif command -v tokengate >/dev/null 2>&1; then tokengate "$@"
  elif [ -f "$_tokengate_clone/bin/tokengate.js" ]; then node "$_tokengate_clone/bin/tokengate.js" "$@"
  else npx tokengate "$@"
  fi
}

TOKENGATE_TOKEN_CACHE="${TOKENGATE_TOKEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tokengate/token-$OIDC_CLIENT_ID.json}"
mkdir -p -m 700 "$(dirname "$TOKENGATE_TOKEN_CACHE")"

tokengate_token() {
  _tokengate token --issuer "$OIDC_ISSUER" --client-id "$OIDC_CLIENT_ID" \
    --client-secret-file "$OIDC_CLIENT_SECRET_FILE" --scope "${OIDC_SCOPE:-db.connect}" \
    --cache "$TOKENGATE_TOKEN_CACHE"
}

tgpsql() {
  local token
  token="$(tokengate_token)" || return
  PGPASSWORD="$token" psql "$@"
}

PGPASSWORD="$(tokengate_token)" && export PGPASSWORD
