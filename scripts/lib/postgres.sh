# shellcheck shell=bash
# PostgreSQL from Debian's postgresql package, run as a cluster of our own
# with initdb and pg_ctl (not Debian's system cluster, no systemd), with
# everything under .work/postgres: data/ (the cluster; postmaster.pid is its
# pid file), run/ (its Unix socket), server.log. Source scripts/lib/common.sh first.
#
# PostgreSQL refuses to run as root: when the scripts run as root, the
# cluster belongs to the postgres user the package creates.

# pg_paths sets PG_DATA, PG_RUN and PG_LOG from PG_STATE.
pg_paths() {
	PG_DATA="$PG_STATE/data"
	PG_RUN="$PG_STATE/run"
	PG_LOG="$PG_STATE/server.log"
}
# .work/postgres is a link when the postgres user cannot reach .work (see postgres_init).
PG_STATE="$WORK/postgres"
[ -L "$PG_STATE" ] && PG_STATE=$(readlink -f "$PG_STATE")
pg_paths

# pg_as CMD... runs CMD as the user that owns our cluster.
pg_as() {
	if [ "$(id -u)" = 0 ]; then
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

# pg_bindir prints the bin directory of the server version our cluster was
# made with, or of the newest installed one when there is no cluster yet.
pg_bindir() {
	local v=
	[ -f "$PG_DATA/PG_VERSION" ] && v=$(cat "$PG_DATA/PG_VERSION")
	[ -n "$v" ] || v=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | sort -V | tail -n1)
	[ -n "$v" ] && [ -x "/usr/lib/postgresql/$v/bin/postgres" ] || die "postgres: no server${v:+ of version $v} installed under /usr/lib/postgresql"
	echo "/usr/lib/postgresql/$v/bin"
}

postgres_install() {
	# Debian's package also creates its own cluster ("main"); these scripts never use it.
	compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || apt_install postgresql
	PG_BIN=$(pg_bindir)
}

# postgres_pid prints the pid of our cluster's postmaster: the one in
# data/postmaster.pid, when that process runs on our data directory.
postgres_pid() {
	local pid
	pid=$(pid_from_file "$PG_DATA/postmaster.pid") && proc_has "$pid" "$PG_DATA" || return 1
	echo "$pid"
}

# postgres_init creates our cluster in .work/postgres/data: superuser
# postgres reachable only over our own socket directory, password logins
# (scram) over TCP.
#
# As root, the cluster belongs to user postgres, who must be able to reach
# it: when a folder above .work is closed to others (a checkout under /root),
# the cluster goes to /var/tmp/switchyard-postgres-HASH-OF-.work instead,
# and .work/postgres links there.
postgres_init() {
	if [ "$(id -u)" = 0 ] && [ ! -L "$WORK/postgres" ] && ! pg_as test -x "$WORK"; then
		PG_STATE="/var/tmp/switchyard-postgres-$(printf %s "$WORK" | sha256sum | cut -c1-12)"
		log "postgres: user postgres cannot reach $(rel "$WORK"); the cluster goes to $PG_STATE, linked from $(rel "$WORK")/postgres"
		rm -rf "$WORK/postgres"
		mkdir -p "$PG_STATE" && chmod 700 "$PG_STATE"
		ln -sfn "$PG_STATE" "$WORK/postgres"
		pg_paths
	fi
	mkdir -p "$PG_STATE"
	[ "$(id -u)" = 0 ] && chown postgres: "$PG_STATE"
	pg_as test -w "$PG_STATE" || die "postgres: user postgres cannot write $PG_STATE"
	log "postgres: creating a cluster in $(rel "$PG_DATA")"
	pg_as "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C \
		--auth-local=trust --auth-host=scram-sha-256 --no-instructions >"$PG_STATE/initdb.log" 2>&1 \
		|| { cat "$PG_STATE/initdb.log" >&2; die "postgres: initdb failed"; }
	# Settings that depend on this checkout live in switchyard.conf, rewritten on every start.
	pg_as sh -c "echo \"include_if_exists = 'switchyard.conf'\" >>'$PG_DATA/postgresql.conf'"
}

# pg_admin runs the SQL on stdin with psql as the superuser over our cluster's socket.
pg_admin() {
	pg_as "$PG_BIN/psql" -X -q -h "$PG_RUN" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1
}

postgres_query_as_user() {
	PGPASSWORD="$PG_PASSWORD" "$PG_BIN/psql" -X -q -At -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$PG_DB" \
		-c 'SELECT 1' 2>/dev/null | grep -x 1 >/dev/null
}

postgres_isready() { "$PG_BIN/pg_isready" -q -h "$PG_HOST" -p "$PG_PORT"; }

# postgres_ready waits until our cluster answers on PG_PORT and lets the test
# user in, creating that role and database when they are missing.
postgres_ready() {
	local port
	port=$(sed -n 4p "$PG_DATA/postmaster.pid" 2>/dev/null)
	[ "$port" = "$PG_PORT" ] || die "postgres: our cluster in $(rel "$PG_DATA") runs on port ${port:-?}, not $PG_PORT; run scripts/postgres.sh stop first"
	wait_until 60 "postgres" postgres_isready || die "postgres: pg_isready -h $PG_HOST -p $PG_PORT fails; see $(rel "$PG_LOG")"
	postgres_query_as_user && return 0
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
	postgres_query_as_user || die "postgres: cannot query $PG_DB as $PG_USER over $PG_HOST:$PG_PORT"
}

postgres_start() {
	postgres_install
	local pid
	if pid=$(postgres_pid); then
		log "postgres: already running (pid $pid, $(rel "$PG_DATA"))"
		postgres_ready
		return 0
	fi
	if port_open "$PG_HOST" "$PG_PORT"; then
		postgres_isready || die "postgres: $PG_HOST:$PG_PORT is taken by a process that does not answer as PostgreSQL and was not started by these scripts"
		postgres_query_as_user || die "postgres: $PG_HOST:$PG_PORT, a server these scripts did not start, does not let $PG_USER (password $PG_PASSWORD) into database $PG_DB; create them there, or stop that server and run scripts/postgres.sh start"
		foreign postgres "$PG_HOST:$PG_PORT"
		return 0
	fi
	[ -f "$PG_DATA/PG_VERSION" ] || postgres_init
	pg_as mkdir -p "$PG_RUN"
	pg_as sh -c "cat >'$PG_DATA/switchyard.conf'" <<CONF
# Written by scripts/postgres.sh on every start.
port = $PG_PORT
listen_addresses = '$PG_HOST'
unix_socket_directories = '$PG_RUN'
unix_socket_permissions = 0700
CONF
	log "postgres: starting the cluster in $(rel "$PG_DATA") on $PG_HOST:$PG_PORT"
	# In a subshell without our descriptors above 2: the postmaster inherits them.
	(close_fds && pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start >/dev/null) \
		|| { tail -n 20 "$PG_LOG" >&2; die "postgres: pg_ctl start failed; see $(rel "$PG_LOG")"; }
	postgres_pid >/dev/null || die "postgres: started, but $(rel "$PG_DATA")/postmaster.pid names no live postmaster"
	postgres_ready
}

postgres_stop() {
	local pid
	if ! pid=$(postgres_pid); then
		if port_open "$PG_HOST" "$PG_PORT"; then
			log "postgres: $PG_HOST:$PG_PORT is served by a server these scripts did not start; leaving it running"
		else
			log "postgres: not running"
		fi
		return 0
	fi
	PG_BIN=$(pg_bindir)
	log "postgres: stopping the cluster in $(rel "$PG_DATA") (pid $pid)"
	pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null \
		|| die "postgres: pg_ctl stop failed; see $(rel "$PG_LOG")"
}

# postgres_restart stops our cluster and starts it again on the same data.
# It refuses a server we did not start; with nothing running it is postgres_start.
postgres_restart() {
	if ! postgres_pid >/dev/null && port_open "$PG_HOST" "$PG_PORT"; then
		refuse_restart postgres "$PG_HOST:$PG_PORT"
	fi
	postgres_stop
	postgres_start
}

postgres_status() {
	local pid
	if pid=$(postgres_pid); then
		echo "postgres: running (pid $pid), cluster in $(rel "$PG_DATA") on $PG_HOST:$PG_PORT (user $PG_USER)"
	elif port_open "$PG_HOST" "$PG_PORT"; then
		echo "postgres: $PG_HOST:$PG_PORT accepts connections, not started by these scripts"
	else
		echo "postgres: stopped"
		return 3
	fi
}

postgres_where() {
	local who
	who="cluster $(rel "$PG_DATA"), log $(rel "$PG_LOG")"
	postgres_pid >/dev/null || who="not started by these scripts"
	echo "postgres  $PG_HOST:$PG_PORT  user $PG_USER, database $PG_DB; $who"
}
