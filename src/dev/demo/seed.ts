/**
 * The demo's sample data: a small order book (customers, orders) and the items table the MySQL
 * examples read, in the SQL of each server. The embedded PGlite gets it in `public` with the two
 * least-privilege roles the gateway's `reader` and `writer` map to (the same SQL docs/grants.md
 * shows for a real server); a real server given with --postgres/--mysql gets it in a schema (a
 * database, on MySQL) of its own, see seedServer.ts.
 */

/** Upstream users behind the demo's gateway roles (embedded PGlite). */
export const DEMO_DB_USERS = { reader: 'demo_reader', writer: 'demo_writer' } as const;

/** The tables, in the order they are created. */
export const SAMPLE_TABLES = ['customers', 'orders', 'items'] as const;

const CUSTOMERS = `(1, 'Acme Corp', 'emea'), (2, 'Globex', 'amer'), (3, 'Initech', 'amer'), (4, 'Umbrella', 'apac')`;
const ORDERS = `(1, 1200.00, 'paid'), (2, 310.50, 'open'), (3, 75.00, 'paid'), (1, 980.25, 'open'), (4, 15.99, 'cancelled')`;
const ITEMS = Array.from({ length: 10 }, (_, i) => `(${i + 1}, 'item ${i + 1}')`).join(', ');

/** PostgreSQL statements creating the sample tables; `prefix` is '' or a quoted schema name and a dot. */
export function postgresSampleSql(prefix = ''): string[] {
  return [
    `CREATE TABLE ${prefix}customers (id int PRIMARY KEY, name text NOT NULL, region text NOT NULL)`,
    `CREATE TABLE ${prefix}orders (
  id          serial        PRIMARY KEY,
  customer_id int           NOT NULL REFERENCES ${prefix}customers (id),
  total       numeric(10,2) NOT NULL CHECK (total >= 0),
  status      text          NOT NULL DEFAULT 'open',
  created_at  timestamptz   NOT NULL DEFAULT now()
)`,
    `CREATE TABLE ${prefix}items (id int PRIMARY KEY, name text NOT NULL)`,
    `INSERT INTO ${prefix}customers VALUES ${CUSTOMERS}`,
    `INSERT INTO ${prefix}orders (customer_id, total, status) VALUES ${ORDERS}`,
    `INSERT INTO ${prefix}items VALUES ${ITEMS}`,
  ];
}

/** MySQL/MariaDB statements (one per COM_QUERY) creating the sample tables in `db` (a quoted name). */
export function mysqlSampleSql(db: string): string[] {
  return [
    `CREATE TABLE ${db}.customers (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, region VARCHAR(20) NOT NULL) CHARACTER SET utf8mb4`,
    `CREATE TABLE ${db}.orders (
  id          INT AUTO_INCREMENT PRIMARY KEY,
  customer_id INT           NOT NULL,
  total       DECIMAL(10,2) NOT NULL CHECK (total >= 0),
  status      VARCHAR(20)   NOT NULL DEFAULT 'open',
  created_at  TIMESTAMP     NOT NULL DEFAULT CURRENT_TIMESTAMP,
  FOREIGN KEY (customer_id) REFERENCES ${db}.customers (id)
) CHARACTER SET utf8mb4`,
    `CREATE TABLE ${db}.items (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL) CHARACTER SET utf8mb4`,
    `INSERT INTO ${db}.customers VALUES ${CUSTOMERS}`,
    `INSERT INTO ${db}.orders (customer_id, total, status) VALUES ${ORDERS}`,
    `INSERT INTO ${db}.items VALUES ${ITEMS}`,
  ];
}

/** The embedded PGlite's database: the tables in public, and the roles. */
export const SEED_SQL = `${postgresSampleSql().join(';\n')};

CREATE ROLE demo_reader LOGIN;
GRANT USAGE ON SCHEMA public TO demo_reader;
GRANT SELECT ON customers, orders, items TO demo_reader;
ALTER ROLE demo_reader SET default_transaction_read_only = on;

CREATE ROLE demo_writer LOGIN;
GRANT USAGE ON SCHEMA public TO demo_writer;
GRANT SELECT ON customers, items TO demo_writer;
GRANT SELECT, INSERT, UPDATE ON orders TO demo_writer;
GRANT USAGE ON SEQUENCE orders_id_seq TO demo_writer;
`;
