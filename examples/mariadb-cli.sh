#!/usr/bin/env bash
# The stock mariadb CLI through tokengate, with an Okta access token as the password.
#
#   TOKENGATE_TOKEN="$(your-okta-client-credentials-flow)" examples/mariadb-cli.sh -e 'SELECT CURRENT_USER()'
#
# The token goes in MYSQL_PWD (or -p"$TOKEN"), never through the interactive -p prompt: the
# prompt reads at most 79 characters and silently cuts an access token (1-2 KB) short.
# libmariadb answers tokengate's mysql_clear_password request without any extra flag; the
# Oracle mysql client needs --enable-cleartext-plugin. Use TLS unless the gateway runs on this
# machine: --ssl-ca=CA.pem --ssl-verify-server-cert (plain --ssl falls back to plaintext).
# Ctrl-C on a running query works as usual: the CLI sends KILL QUERY <tokengate connection id>
# on a new connection with the same token, and tokengate interrupts your query upstream.
set -euo pipefail

: "${TOKENGATE_TOKEN:?set TOKENGATE_TOKEN to an Okta access token}"
host="${TOKENGATE_HOST:-127.0.0.1}"
port="${TOKENGATE_MYSQL_PORT:-6033}"
role="${TOKENGATE_ROLE:-reader}"          # the role you were granted, not a database user
database="${TOKENGATE_DATABASE:-app}"     # a database alias from the gateway config

MYSQL_PWD="$TOKENGATE_TOKEN" exec mariadb -h "$host" -P "$port" -u "$role" -D "$database" "$@"
