# shellcheck shell=bash
# PostgreSQL from Debian's postgresql package, cluster "main", run with
# pg_ctlcluster (no systemd). Source scripts/lib/common.sh first.

PG_CLUSTER=main

# pg_version prints the version of the "main" cluster, or of the newest
# installed server when no cluster exists yet.
pg_version() {
	local v
	v=$(pg_lsclusters -h 2>/dev/null | awk -v c="$PG_CLUSTER" '$2 == c { print $1 }' | sort -V | tail -n1)
	if [ -z "$v" ]; then
		v=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | sort -V | tail -n1)
	fi
	[ -n "$v" ] || die "postgres: no server installed under /usr/lib/postgresql"
	echo "$v"
}

postgres_install() {
	if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
		apt_install postgresql
	fi
	local v
	v=$(pg_version)
	if ! pg_lsclusters -h | awk -v c="$PG_CLUSTER" -v v="$v" '$1 == v && $2 == c { f = 1 } END { exit !f }'; then
		log "postgres: creating cluster $v/$PG_CLUSTER"
		pg_createcluster --port "$PG_PORT" "$v" "$PG_CLUSTER" >/dev/null
	fi
	local port
	port=$(pg_lsclusters -h | awk -v c="$PG_CLUSTER" -v v="$v" '$1 == v && $2 == c { print $3 }')
	[ "$port" = "$PG_PORT" ] || die "postgres: cluster $v/$PG_CLUSTER is configured for port $port, tests need $PG_PORT"
}

postgres_running() {
	pg_ctlcluster "$(pg_version)" "$PG_CLUSTER" status >/dev/null 2>&1
}

# pg_admin runs psql as the postgres superuser over the local socket.
pg_admin() {
	(cd / && runuser -u postgres -- psql -X -q -p "$PG_PORT" -d postgres -v ON_ERROR_STOP=1 "$@")
}

postgres_query_as_user() {
	PGPASSWORD="$PG_PASSWORD" psql -X -q -At -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$PG_DB" \
		-c 'SELECT 1' 2>/dev/null | grep -qx 1
}

postgres_start() {
	postgres_install
	local v
	v=$(pg_version)
	if postgres_running; then
		log "postgres: cluster $v/$PG_CLUSTER already running"
	else
		log "postgres: starting cluster $v/$PG_CLUSTER"
		# Listen on loopback only whatever postgresql.conf says.
		pg_ctlcluster "$v" "$PG_CLUSTER" start -- -o "-c listen_addresses=$PG_HOST" \
			|| die "postgres: pg_ctlcluster $v $PG_CLUSTER start failed; see /var/log/postgresql/"
	fi
	wait_until 60 "postgres" pg_isready -q -h "$PG_HOST" -p "$PG_PORT" \
		|| die "postgres: pg_isready -h $PG_HOST -p $PG_PORT fails"
	if ! postgres_query_as_user; then
		log "postgres: creating role and database $PG_USER"
		pg_admin <<SQL >/dev/null
DO \$\$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
		CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD';
	ELSE
		ALTER ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD';
	END IF;
END
\$\$;
SELECT 'CREATE DATABASE $PG_DB OWNER $PG_USER'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DB') \gexec
SQL
		postgres_query_as_user || die "postgres: cannot query $PG_DB as $PG_USER over $PG_HOST:$PG_PORT (check pg_hba.conf)"
	fi
}

postgres_stop() {
	if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! postgres_running; then
		log "postgres: not running"
		return 0
	fi
	local v
	v=$(pg_version)
	log "postgres: stopping cluster $v/$PG_CLUSTER"
	pg_ctlcluster "$v" "$PG_CLUSTER" stop -m fast || die "postgres: pg_ctlcluster $v $PG_CLUSTER stop failed"
}

postgres_status() {
	if command -v pg_ctlcluster >/dev/null 2>&1 && postgres_running && pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then
		echo "postgres: running, cluster $(pg_version)/$PG_CLUSTER on $PG_HOST:$PG_PORT (user $PG_USER)"
	else
		echo "postgres: stopped"
		return 3
	fi
}

postgres_where() { echo "postgres  $PG_HOST:$PG_PORT  cluster $(pg_version)/$PG_CLUSTER, user $PG_USER, database $PG_DB"; }
