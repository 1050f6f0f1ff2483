"""An agent that talks to MySQL/MariaDB through tokengate with PyMySQL.

    TOKENGATE_TOKEN="$(your-okta-client-credentials-flow)" python3 examples/pymysql_agent.py

PyMySQL answers tokengate's mysql_clear_password request without any option. Pass
TOKENGATE_CA_FILE to use TLS (always, unless the gateway runs on this machine).
Prints one JSON object: the upstream user, the database, and a few rows.
"""
import json
import os

import pymysql


def run_agent(host, port, role, database, token, ca_file=None):
    conn = pymysql.connect(
        host=host,
        port=port,
        user=role,            # the role you were granted, not a database user
        database=database,    # a database alias from the gateway config
        password=token,       # the Okta access token
        ssl={"ca": ca_file} if ca_file else None,
        charset="utf8mb4",
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER(), DATABASE()")
            user, db = cur.fetchone()
            cur.execute("SELECT id, name FROM items WHERE id <= %s ORDER BY id", (3,))
            items = [{"id": r[0], "name": r[1]} for r in cur.fetchall()]
        return {"upstreamUser": user.split("@")[0], "database": db, "threadId": conn.thread_id(), "items": items}
    finally:
        conn.close()


if __name__ == "__main__":
    report = run_agent(
        host=os.environ.get("TOKENGATE_HOST", "127.0.0.1"),
        port=int(os.environ.get("TOKENGATE_MYSQL_PORT", "6033")),
        role=os.environ.get("TOKENGATE_ROLE", "reader"),
        database=os.environ.get("TOKENGATE_DATABASE", "app"),
        token=os.environ["TOKENGATE_TOKEN"],
        ca_file=os.environ.get("TOKENGATE_CA_FILE"),
    )
    print(json.dumps(report))
