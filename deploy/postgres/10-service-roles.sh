#!/bin/sh
# First start of the PostgreSQL container (empty data volume): one login role per service, owning its own
# schema and nothing else (deploy/postgres/service-role.sql). Each role's password is the compose secret
# db_password_<service>, the same file the service reads as its DATABASE_PASSWORD.
set -eu
for service in intake evidence_storage review notification; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v role="$service" -v schema="$service" -v password="$(cat "/run/secrets/db_password_$service")" \
    -f /etc/campaign/service-role.sql
done
