#!/bin/sh
# First start of the primary (docker-entrypoint-initdb.d): a replication role for the replica and
# a pg_hba line that lets it stream. The password comes from REPLICATION_PASSWORD.
set -eu
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" -v password="$REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'password';
SQL
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
