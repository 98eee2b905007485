# shellcheck shell=bash
# Shared helpers for scripts/*.sh. Source it; do not run it.
#
# Everything here is idempotent: the service scripts check what is installed
# and running before acting, so running them twice changes nothing.
#
# Ownership: a server counts as ours only when it was started by these
# scripts from this state directory ($WORK): its pid is in a pid file under
# $WORK and the process runs on the config or data folder under $WORK. Only
# those are ever stopped or restarted. A server that already answers on the
# port without being ours is used as it is, said so in the log, and never
# stopped or restarted (restart refuses).

set -euo pipefail

# REPO is the repository root; WORK (state: data, pid files, logs) and CACHE
# (downloads, built helpers) are gitignored directories under it unless
# SWITCHYARD_WORK / SWITCHYARD_CACHE name others, e.g. to run a second,
# separate set of servers next to the default one.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="${SWITCHYARD_WORK:-$REPO/.work}"
CACHE="${SWITCHYARD_CACHE:-$REPO/.cache}"
mkdir -p "$WORK" "$CACHE"
WORK="$(cd "$WORK" && pwd)" CACHE="$(cd "$CACHE" && pwd)"
export REPO WORK CACHE

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# rel PATH prints PATH relative to the repository when it is inside it.
rel() { echo "${1#"$REPO"/}"; }

# Where each server listens (loopback only). Tests read these through .work/env.
# Override with SWITCHYARD_AMQP_PORT, SWITCHYARD_KAFKA_PORT,
# SWITCHYARD_KAFKA_CONTROLLER_PORT (default: Kafka's + 1) and
# SWITCHYARD_POSTGRES_PORT. RabbitMQ's Erlang distribution listens on
# AMQP_PORT + 20000, as by default.
_port() { # NAME VALUE MAX: check VALUE and assign it to NAME
	[[ $2 =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] && [ "$2" -le "$3" ] || die "$1=$2: want a TCP port from 1 to $3"
	printf -v "$1" %s "$2"
}
AMQP_HOST=127.0.0.1 KAFKA_HOST=127.0.0.1 PG_HOST=127.0.0.1
_port AMQP_PORT "${SWITCHYARD_AMQP_PORT:-5672}" 45535
_port KAFKA_PORT "${SWITCHYARD_KAFKA_PORT:-9092}" 65535
_port KAFKA_CONTROLLER_PORT "${SWITCHYARD_KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}" 65535
_port PG_PORT "${SWITCHYARD_POSTGRES_PORT:-5432}" 65535
unset -f _port
PG_USER=switchyard PG_PASSWORD=switchyard PG_DB=switchyard

AMQP_URL="amqp://guest:guest@$AMQP_HOST:$AMQP_PORT/"
KAFKA_BROKERS="$KAFKA_HOST:$KAFKA_PORT"
PG_URL="postgres://$PG_USER:$PG_PASSWORD@$PG_HOST:$PG_PORT/$PG_DB?sslmode=disable"

# Go may not be on PATH in a fresh root shell (CI); it lives in /usr/local/go here.
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	PATH="/usr/local/go/bin:$PATH"
	export PATH
fi

# apt_install PKG... installs the packages with apt-get, running
# `apt-get update` at most once per run of the calling script, and only
# when something is to be installed. A package's maintainer scripts may
# start its system service (Debian's rabbitmq-server and postgresql do,
# where no policy-rc.d forbids it): a server nobody here started, which would
# then hold the port. Unless the machine has a policy-rc.d already, one that
# forbids starting services is put in place for the install and removed after.
_APT_UPDATED=${_APT_UPDATED:-}
APT_POLICY_RC=${APT_POLICY_RC:-/usr/sbin/policy-rc.d}
apt_install() {
	[ "$(id -u)" = 0 ] || die "installing $* needs root"
	if [ -z "$_APT_UPDATED" ]; then
		log "apt-get update"
		apt-get update -qq >/dev/null || die "apt-get update failed"
		_APT_UPDATED=1
		export _APT_UPDATED
	fi
	local guard='' rc=0
	if [ ! -e "$APT_POLICY_RC" ]; then
		printf '#!/bin/sh\n# Written by switchyard scripts/lib/common.sh for one apt-get install, then removed.\nexit 101\n' >"$APT_POLICY_RC"
		chmod 755 "$APT_POLICY_RC"
		guard=1
	fi
	log "apt-get install $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null || rc=$?
	[ -z "$guard" ] || rm -f "$APT_POLICY_RC"
	[ "$rc" = 0 ] || die "apt-get install $* failed"
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

# pid_from_file FILE prints the pid in FILE when that process is alive.
pid_from_file() {
	local pid
	[ -f "$1" ] || return 1
	pid=$(head -n1 "$1" 2>/dev/null | tr -d '[:space:]')
	[[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
	echo "$pid"
}

# proc_has PID STRING succeeds when the command line or the environment of
# PID contains STRING (one of our own paths, proving the process is ours).
proc_has() {
	{ tr '\0' '\n' <"/proc/$1/cmdline"; tr '\0' '\n' <"/proc/$1/environ"; } 2>/dev/null | grep -F -- "$2" >/dev/null
}

# close_fds closes every file descriptor above 2 of the current shell, so a
# server started from it does not hold the caller's pipes open (a `make up |
# tail` or CI runner would then wait for it forever).
close_fds() {
	local fd n
	for fd in /proc/$BASHPID/fd/*; do
		n=${fd##*/}
		[ "$n" -gt 2 ] 2>/dev/null || continue
		{ eval "exec $n>&-"; } 2>/dev/null || true
	done
}

# daemon LOG CMD... starts CMD in a session of its own (it outlives the
# shell and process group that started it), from /, stdin /dev/null, stdout
# and stderr to LOG, no other inherited descriptor; sets DAEMON_PID to its pid.
daemon() {
	local logf=$1
	shift
	(
		close_fds
		cd /
		exec setsid nohup "$@" </dev/null >"$logf" 2>&1
	) &
	# shellcheck disable=SC2034 # read by the service libraries
	DAEMON_PID=$!
}

# stop_pid NAME PID [SECONDS] sends SIGTERM to PID, then SIGKILL if it is
# still alive after SECONDS (60), and waits until it is gone.
stop_pid() {
	local name=$1 pid=$2 secs=${3:-60}
	kill -TERM "$pid" 2>/dev/null || return 0
	if ! wait_until "$secs" "$name stop" eval "! kill -0 $pid"; then
		log "$name: pid $pid ignored SIGTERM for ${secs}s, killing it"
		kill -KILL "$pid" 2>/dev/null || true
		wait_until 10 "$name kill" eval "! kill -0 $pid" || die "$name: pid $pid survives SIGKILL"
	fi
}

# foreign NAME WHERE logs that a server we did not start serves WHERE.
foreign() {
	log "$1: $2 is served by a server these scripts did not start (nothing of ours runs from $(rel "$WORK")/$1); using it as it is, never stopping or restarting it"
}

# refuse_restart NAME WHERE ends a restart of a server we did not start.
refuse_restart() {
	die "$1: refusing to restart $2: that server was not started by these scripts from $(rel "$WORK") (no live pid in $(rel "$WORK")/$1); restart it where it was started, or stop it and run scripts/$1.sh start"
}

# write_env writes .work/env with an export line for every server that
# currently accepts connections, so `source .work/env` never points a test
# at a server that is down (tests skip, or fail under CI, instead).
write_env() {
	local tmp="$WORK/env.tmp.$$"
	{
		echo "# Written by scripts/up.sh: addresses of the test brokers. Source it: . $(rel "$WORK")/env"
		port_open "$AMQP_HOST" "$AMQP_PORT" && echo "export SWITCHYARD_TEST_AMQP_URL='$AMQP_URL'" &&
			echo "export SWITCHYARD_TEST_RABBITMQCTL='$WORK/rabbitmqctl'"
		port_open "$KAFKA_HOST" "$KAFKA_PORT" && echo "export SWITCHYARD_TEST_KAFKA_BROKERS='$KAFKA_BROKERS'"
		port_open "$PG_HOST" "$PG_PORT" && echo "export SWITCHYARD_TEST_POSTGRES_URL='$PG_URL'"
		true
	} >"$tmp"
	# rabbitmqctl for this node, whatever the caller's environment: the
	# port and state folder select the node (scripts/rabbitmqctl.sh).
	printf '#!/bin/sh\n# Written by scripts/up.sh: rabbitmqctl for the test node.\nexec env SWITCHYARD_AMQP_PORT=%s SWITCHYARD_WORK=%s %s "$@"\n' \
		"$AMQP_PORT" "'$WORK'" "'$REPO/scripts/rabbitmqctl.sh'" >"$WORK/rabbitmqctl"
	chmod +x "$WORK/rabbitmqctl"
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
# Each service library defines NAME_start, _stop, _restart, _status, _where.
service_main() {
	local name=$1 action=${2:-}
	load_service "$name"
	case "$action" in
	start) "${name}_start"; write_env; "${name}_where" ;;
	stop) "${name}_stop"; write_env ;;
	restart) "${name}_restart"; write_env; "${name}_where" ;;
	status) "${name}_status" ;;
	*)
		echo "usage: scripts/$name.sh start|stop|restart|status" >&2
		exit 2
		;;
	esac
}
