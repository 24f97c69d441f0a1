#!/usr/bin/env bash
# pg_seccomp-entrypoint.sh: the official postgres image's start-up, with the server under
# pg_seccomp (contrib/docker/Dockerfile; docs/deploy.md, "Containers").
#
#   1. Initialise PGDATA exactly as the official image does (its docker-ensure-initdb.sh: initdb,
#      the POSTGRES_* variables, /docker-entrypoint-initdb.d). A no-op when PGDATA already holds
#      a database. The temporary server it runs for the init scripts is not filtered.
#   2. exec pg_seccomp run: it installs the filter, execs postgres as the postgres user, and
#      stays as the server's parent (forwarding signals, answering the filter's notifications).
#
# As root (the default) pg_seccomp becomes postgres itself and the server's user can neither
# signal nor inspect it. As the postgres user (docker run --user postgres, runAsUser: 999) it
# works too, with the weaker guarantees docs/deploy.md describes.
set -Eeuo pipefail

: "${PG_SECCOMP_POLICY:=/etc/pg_seccomp/postgresql-15.conf}"
postgres_bin="/usr/lib/postgresql/${PG_MAJOR:-15}/bin/postgres"

# As the official entrypoint: no command, or a first argument that is a flag, means postgres.
if [ "$#" -eq 0 ]; then
	set -- postgres
fi
case "${1:-}" in
	-*) set -- postgres "$@" ;;
esac
# Any other command (bash, psql, ...) runs as given, without the filter.
if [ "${1:-}" != 'postgres' ]; then
	exec "$@"
fi

docker-ensure-initdb.sh "$@"
shift

user_args=()
if [ "$(id -u)" = '0' ]; then
	user_args=(--user postgres)
fi
exec pg_seccomp run --policy "$PG_SECCOMP_POLICY" "${user_args[@]}" -- "$postgres_bin" "$@"
