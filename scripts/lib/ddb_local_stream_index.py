#!/usr/bin/env python3
"""Adds the index DynamoDB Local's stream store lacks, so that writes stay fast as records pile up.

DynamoDB Local keeps every stream record of the instance in one SQLite table (`us`), keyed by
sequence number only. Each write to a stream-enabled table describes the stream first, and that
query asks for `MIN(SequenceNumber) ... WHERE StreamID = ?`: a scan of every stream record the
instance has ever written, whichever table wrote it. After a few thousand records a 25-item
transaction takes ~300 ms instead of ~15 ms (measured; docs/decisions.md, "Webhooks"). AWS has no
such cost. With an index on (StreamID, SequenceNumber) the query is a lookup and nothing else
changes: the index holds no data of its own, and DynamoDB Local never learns it is there.

Usage: ddb_local_stream_index.py PORT DB_FILE. DynamoDB Local must run with -sharedDb -dbPath.
The first request creates the database's tables, so we send one (ListTables) before indexing.
"""
import sqlite3
import sys
import time
import urllib.request

port, db_file = sys.argv[1], sys.argv[2]

request = urllib.request.Request(
    f"http://127.0.0.1:{port}/",
    data=b"{}",
    headers={
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "DynamoDB_20120810.ListTables",
        # DynamoDB Local reads the access key from here and checks no signature.
        "Authorization": "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host, Signature=0",
    },
)
urllib.request.urlopen(request, timeout=30).read()

db = sqlite3.connect(db_file, timeout=30)
for _ in range(150):
    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'us'").fetchone():
        break
    time.sleep(0.2)
else:
    sys.exit(f"DynamoDB Local created no stream table in {db_file}")
db.execute("CREATE INDEX IF NOT EXISTS us_by_stream ON us (StreamID, SequenceNumber)")
db.execute("CREATE INDEX IF NOT EXISTS us_by_shard ON us (ShardID, SequenceNumber)")
db.commit()
