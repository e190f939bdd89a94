"""Loads the ClickHouse sink's output files into ClickHouse (chdb, in process) and prints
the answers tests/clickhouse_sink.rs compares with crmdb's own, as one JSON object.

    python check.py OUT_DIR SESSION_DIR

OUT_DIR holds the sink's files and its schema.sql; SESSION_DIR is where ClickHouse
keeps the tables (made anew on each run).
"""

import json
import os
import shutil
import sys

from chdb import session

out_dir, session_dir = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
shutil.rmtree(session_dir, ignore_errors=True)
os.chdir(out_dir)
db = session.Session(session_dir)
for statement in open("schema.sql").read().split(";\n"):
    statement = "\n".join(l for l in statement.splitlines() if not l.startswith("--")).strip()
    if statement.startswith("INSERT"):
        # Keep redelivered rows as separate rows, so that "rows" counts them and FINAL
        # is what folds them.
        statement += " SETTINGS optimize_on_insert = 0"
    if statement:
        db.query(statement)


def rows(query):
    return json.loads(str(db.query(query, "JSONCompact")) or '{"data": []}')["data"]


answers = {
    "contacts": {t: [int(n), int(s)] for t, n, s in rows(
        "SELECT tenant, count(), sum(stats_total_spent) FROM crm_contact FINAL "
        "GROUP BY tenant ORDER BY tenant")},
    "emails": {t: int(n) for t, n in rows(
        "SELECT tenant, uniqExact(email) FROM crm_contact FINAL WHERE email IS NOT NULL "
        "GROUP BY tenant")},
    "deals": {},
    "orders": {t: [int(n), int(s)] for t, n, s in rows(
        "SELECT tenant, count(), sumIf(total, status = 'Paid') FROM crm_order FINAL "
        "GROUP BY tenant ORDER BY tenant")},
    "segments": {},
    "both": {t: int(n) for t, n in rows(
        "SELECT tenant, bitmapAndCardinality(anyIf(members, segment = 'vips'), "
        "anyIf(members, segment = 'big_spenders')) FROM crm_segment_members FINAL "
        "GROUP BY tenant")},
    "rows": int(rows("SELECT count() FROM crm_contact")[0][0]),
}
for tenant, stage, n, amount in rows(
        "SELECT tenant, stage, count(), sum(amount) FROM crm_deal FINAL "
        "GROUP BY tenant, stage ORDER BY tenant, stage"):
    answers["deals"].setdefault(tenant, {})[stage] = [int(n), int(amount)]
for tenant, segment, n in rows(
        "SELECT tenant, segment, bitmapCardinality(members) FROM crm_segment_members FINAL "
        "ORDER BY tenant, segment"):
    answers["segments"].setdefault(tenant, {})[segment] = int(n)
print(json.dumps(answers, sort_keys=True))
