"""Writes tests/fixtures/clickhouse_group_bitmap.tsv: groupBitmap states that ClickHouse
itself produced (through chdb, ClickHouse in process), with the ids each holds.

    python3 -m venv venv && venv/bin/pip install chdb-core
    venv/bin/python tests/clickhouse/make_fixture.py > tests/fixtures/clickhouse_group_bitmap.tsv

Columns: name, whether crmdb's encoder must write the same bytes (1) or only read them
(0: ClickHouse keeps a small set's ids in the order they came), the state in hex, and
the ids as comma-separated values and inclusive ranges (`a-b`).
"""

import json

import chdb

# name -> (exact, query yielding the column x in the order ClickHouse adds it)
SETS = {
    "empty": (1, "SELECT toUInt32(0) AS x WHERE 0"),
    "one": (1, "SELECT toUInt32(7) AS x"),
    "small": (1, "SELECT toUInt32(arrayJoin([0, 1, 2, 100, 65535, 65536, 4294967295])) AS x ORDER BY x"),
    "small_unsorted": (0, "SELECT toUInt32(arrayJoin([9, 3, 4000000000, 1])) AS x"),
    "thirty_two": (1, "SELECT toUInt32(number * 3) AS x FROM numbers(32) ORDER BY x"),
    "thirty_three": (1, "SELECT toUInt32(number * 3) AS x FROM numbers(33) ORDER BY x"),
    "sparse": (1, "SELECT DISTINCT toUInt32((number * 2654435761) % 10000000) AS x FROM numbers(1000) ORDER BY x"),
    "run": (1, "SELECT toUInt32(number) AS x FROM numbers(100000) ORDER BY x"),
    "dense": (1, "SELECT toUInt32(number * 2) AS x FROM numbers(5000) ORDER BY x"),
    "mixed": (1, "SELECT DISTINCT x FROM (SELECT toUInt32(1000 + number) AS x FROM numbers(4000) "
                 "UNION ALL SELECT toUInt32(70000 + number * 2) AS x FROM numbers(5000) "
                 "UNION ALL SELECT toUInt32(4294900000 + number * 7) AS x FROM numbers(300)) ORDER BY x"),
}


def ranges(ids):
    out, start, prev = [], None, None
    for i in ids:
        if start is None:
            start = prev = i
        elif i == prev + 1:
            prev = i
        else:
            out.append(str(start) if start == prev else f"{start}-{prev}")
            start = prev = i
    if start is not None:
        out.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(out)


for name, (exact, query) in SETS.items():
    result = chdb.query(
        f"SELECT hex(groupBitmapState(x)), arraySort(groupArray(x)) FROM ({query}) "
        "SETTINGS max_threads = 1",
        "JSONCompact",
    )
    (state, ids), = json.loads(str(result))["data"]
    print(f"{name}\t{exact}\t{state}\t{ranges(ids)}")
