# shellcheck shell=bash
# Shared helpers for scripts/*.sh. Source it; do not run it.
#
# Everything here is idempotent: the service scripts check what is installed
# and running before acting, so running them twice changes nothing.

set -euo pipefail

# REPO is the repository root; WORK and CACHE are gitignored state directories.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$REPO/.work"
CACHE="$REPO/.cache"
export REPO WORK CACHE

# Where each server listens. Tests read these through .work/env.
AMQP_HOST=127.0.0.1 AMQP_PORT=5672
KAFKA_HOST=127.0.0.1 KAFKA_PORT=9092 KAFKA_CONTROLLER_PORT=9093
PG_HOST=127.0.0.1 PG_PORT=5432
PG_USER=switchyard PG_PASSWORD=switchyard PG_DB=switchyard

AMQP_URL="amqp://guest:guest@$AMQP_HOST:$AMQP_PORT/"
KAFKA_BROKERS="$KAFKA_HOST:$KAFKA_PORT"
PG_URL="postgres://$PG_USER:$PG_PASSWORD@$PG_HOST:$PG_PORT/$PG_DB?sslmode=disable"

# Go may not be on PATH in a fresh root shell (CI); it lives in /usr/local/go here.
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	PATH="/usr/local/go/bin:$PATH"
	export PATH
fi

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# rel PATH prints PATH relative to the repository when it is inside it.
rel() { echo "${1#"$REPO"/}"; }

# apt_install PKG... installs the packages with apt-get, running
# `apt-get update` at most once per run of the calling script.
_APT_UPDATED=${_APT_UPDATED:-}
apt_install() {
	[ "$(id -u)" = 0 ] || die "installing $* needs root"
	if [ -z "$_APT_UPDATED" ]; then
		log "apt-get update"
		apt-get update -qq >/dev/null || die "apt-get update failed"
		_APT_UPDATED=1
		export _APT_UPDATED
	fi
	log "apt-get install $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
		|| die "apt-get install $* failed"
}

# port_open HOST PORT succeeds when something accepts TCP connections there.
port_open() {
	(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# wait_until SECONDS WHAT CMD... retries CMD every half second until it
# succeeds or SECONDS pass.
wait_until() {
	local secs=$1 what=$2
	shift 2
	local deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$deadline" ] || { log "$what: not ready after ${secs}s"; return 1; }
		sleep 0.5
	done
}

# write_env writes .work/env with an export line for every server that
# currently accepts connections, so `source .work/env` never points a test
# at a server that is down (tests skip, or fail under CI, instead).
write_env() {
	mkdir -p "$WORK"
	local tmp="$WORK/env.tmp.$$"
	{
		echo "# Written by scripts/up.sh: addresses of the test brokers. Source it: . .work/env"
		port_open "$AMQP_HOST" "$AMQP_PORT" && echo "export SWITCHYARD_TEST_AMQP_URL='$AMQP_URL'"
		port_open "$KAFKA_HOST" "$KAFKA_PORT" && echo "export SWITCHYARD_TEST_KAFKA_BROKERS='$KAFKA_BROKERS'"
		port_open "$PG_HOST" "$PG_PORT" && echo "export SWITCHYARD_TEST_POSTGRES_URL='$PG_URL'"
		true
	} >"$tmp"
	mv "$tmp" "$WORK/env"
}

# SERVICES lists the servers scripts/up.sh manages, in start order.
SERVICES=(rabbitmq kafka postgres)

# load_service NAME sources scripts/lib/NAME.sh, rejecting unknown names.
load_service() {
	case " ${SERVICES[*]} " in
	*" $1 "*) ;;
	*) die "unknown service \"$1\": want one of ${SERVICES[*]}" ;;
	esac
	# shellcheck source=/dev/null
	. "$REPO/scripts/lib/$1.sh"
}

# service_main NAME ACTION implements scripts/NAME.sh start|stop|restart|status.
service_main() {
	local name=$1 action=${2:-}
	load_service "$name"
	case "$action" in
	start) "${name}_start"; write_env; "${name}_where" ;;
	stop) "${name}_stop"; write_env ;;
	restart)
		if declare -F "${name}_restart" >/dev/null; then
			"${name}_restart"
		else
			"${name}_stop"
			"${name}_start"
		fi
		write_env
		"${name}_where"
		;;
	status) "${name}_status" ;;
	*)
		echo "usage: scripts/$name.sh start|stop|restart|status" >&2
		exit 2
		;;
	esac
}
