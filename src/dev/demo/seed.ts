/**
 * The embedded demo database: a small order book, and the two least-privilege roles the
 * gateway's `reader` and `writer` map to (the same SQL docs/grants.md shows for a real server).
 */

/** Upstream users behind the demo's gateway roles. */
export const DEMO_DB_USERS = { reader: 'demo_reader', writer: 'demo_writer' } as const;

export const SEED_SQL = `
CREATE TABLE customers (
  id     int  PRIMARY KEY,
  name   text NOT NULL,
  region text NOT NULL
);
CREATE TABLE orders (
  id          serial        PRIMARY KEY,
  customer_id int           NOT NULL REFERENCES customers (id),
  total       numeric(10,2) NOT NULL CHECK (total >= 0),
  status      text          NOT NULL DEFAULT 'open',
  created_at  timestamptz   NOT NULL DEFAULT now()
);
INSERT INTO customers VALUES
  (1, 'Acme Corp', 'emea'), (2, 'Globex', 'amer'), (3, 'Initech', 'amer'), (4, 'Umbrella', 'apac');
INSERT INTO orders (customer_id, total, status) VALUES
  (1, 1200.00, 'paid'), (2, 310.50, 'open'), (3, 75.00, 'paid'), (1, 980.25, 'open'), (4, 15.99, 'cancelled');

CREATE ROLE demo_reader LOGIN;
GRANT USAGE ON SCHEMA public TO demo_reader;
GRANT SELECT ON customers, orders TO demo_reader;
ALTER ROLE demo_reader SET default_transaction_read_only = on;

CREATE ROLE demo_writer LOGIN;
GRANT USAGE ON SCHEMA public TO demo_writer;
GRANT SELECT ON customers TO demo_writer;
GRANT SELECT, INSERT, UPDATE ON orders TO demo_writer;
GRANT USAGE ON SEQUENCE orders_id_seq TO demo_writer;
`;
