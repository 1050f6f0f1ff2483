-- tokengate benchmark, scenario 5: MySQL connect-per-query.
-- Every event opens a new connection, runs one point select on sbtest1 and disconnects,
-- so it measures login cost (for tokengate: token check plus a pooled, reset upstream).
-- Prepare the table first with: sysbench oltp_point_select --tables=1 --table-size=N prepare

sysbench.cmdline.options = {
  table_size = {"Number of rows in sbtest1", 10000},
  tables = {"Accepted for symmetry with oltp_point_select; only sbtest1 is read", 1},
}

function thread_init()
  drv = sysbench.sql.driver()
end

function event()
  local con = drv:connect()
  con:query(string.format("SELECT c FROM sbtest1 WHERE id=%d",
                          sysbench.rand.default(1, sysbench.opt.table_size)))
  con:disconnect()
end
