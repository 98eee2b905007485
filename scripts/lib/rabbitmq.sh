# shellcheck shell=bash
# RabbitMQ from Debian's rabbitmq-server package, run as a node of our own
# (not the system node, no systemd) with everything under .work/rabbitmq:
# mnesia/ (data), log/, rabbitmq.pid, its own config files and Erlang cookie
# (so rabbitmqctl here can reach only this node). Source scripts/lib/common.sh first.
#
# Optional settings for private test nodes (internal/brokertest passes them
# with WithScriptEnv); the shared node never sets them:
#   SWITCHYARD_RABBITMQ_CONF_EXTRA      a file appended to the node's rabbitmq.conf
#                                       on every start (a TLS listener, say)
#   SWITCHYARD_RABBITMQ_ADVANCED_CONFIG a file copied to the node's advanced.config
#   SWITCHYARD_RABBITMQ_PLUGINS         plugins to enable, comma-separated
#                                       (rabbitmq_auth_mechanism_ssl, say)

RABBITMQ_BIN=/usr/lib/rabbitmq/bin
RABBITMQ_STATE="$WORK/rabbitmq"
RABBITMQ_PIDFILE="$RABBITMQ_STATE/rabbitmq.pid"
RABBITMQ_OUT="$RABBITMQ_STATE/server.out"
# The node name carries the port and a hash of the state directory, so two
# checkouts never share one.
RABBITMQ_NODE="switchyard-$AMQP_PORT-$(printf %s "$RABBITMQ_STATE" | sha256sum | cut -c1-8)@localhost"

# RABBITMQ_ENV points RabbitMQ's scripts at our node and our files only
# (never /etc/rabbitmq or /var/lib/rabbitmq).
RABBITMQ_ENV=(
	HOME="$RABBITMQ_STATE"
	RABBITMQ_NODENAME="$RABBITMQ_NODE"
	RABBITMQ_NODE_IP_ADDRESS="$AMQP_HOST" RABBITMQ_NODE_PORT="$AMQP_PORT"
	RABBITMQ_DIST_PORT="$((AMQP_PORT + 20000))"
	RABBITMQ_CONF_ENV_FILE="$RABBITMQ_STATE/rabbitmq-env.conf"
	RABBITMQ_CONFIG_FILE="$RABBITMQ_STATE/rabbitmq.conf"
	RABBITMQ_ADVANCED_CONFIG_FILE="$RABBITMQ_STATE/advanced.config"
	RABBITMQ_ENABLED_PLUGINS_FILE="$RABBITMQ_STATE/enabled_plugins"
	RABBITMQ_MNESIA_BASE="$RABBITMQ_STATE/mnesia"
	RABBITMQ_LOG_BASE="$RABBITMQ_STATE/log"
	RABBITMQ_PID_FILE="$RABBITMQ_PIDFILE"
	ERL_CRASH_DUMP="$RABBITMQ_STATE/erl_crash.dump"
	RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
)

rabbitmq_ctl() { env "${RABBITMQ_ENV[@]}" "$RABBITMQ_BIN/rabbitmqctl" "$@"; }

rabbitmq_install() {
	[ -x "$RABBITMQ_BIN/rabbitmq-server" ] || apt_install rabbitmq-server
}

# rabbitmq_pid prints the pid of our node: the one in our pid file, when
# that process runs with our mnesia directory.
rabbitmq_pid() {
	local pid
	pid=$(pid_from_file "$RABBITMQ_PIDFILE") && proc_has "$pid" "$RABBITMQ_STATE/mnesia" || return 1
	echo "$pid"
}

# rabbitmq_node_up succeeds when our Erlang node answers (it may still be booting).
rabbitmq_node_up() {
	rabbitmq_ctl -q ping >/dev/null 2>&1
}

# rabbitmq_amqp_answers sends the AMQP 0-9-1 protocol header to the listener
# and succeeds when the server replies with a method frame (Connection.Start),
# which only a running broker does: an open port alone is not proof.
rabbitmq_amqp_answers() {
	local reply
	reply=$(
		exec 2>/dev/null
		exec 3<>"/dev/tcp/$AMQP_HOST/$AMQP_PORT" || exit 1
		printf 'AMQP\000\000\011\001' >&3
		timeout 5 head -c 3 <&3 | od -An -tx1 | tr -d ' \n'
	) || return 1
	[ "$reply" = "010000" ]
}

# rabbitmq_booted waits until our node has finished booting; on failure it
# prints what the node logged, so a CI log says why.
rabbitmq_booted() {
	rabbitmq_ctl -q await_startup --timeout 120 >/dev/null 2>&1 && return 0
	log "rabbitmq: await_startup failed; the end of $(rel "$RABBITMQ_OUT") and of the node's log:"
	tail -n 20 "$RABBITMQ_OUT" >&2 2>/dev/null
	tail -n 40 "$RABBITMQ_STATE"/log/*.log >&2 2>/dev/null
	return 1
}

# rabbitmq_ready waits until our node has booted and answers AMQP.
rabbitmq_ready() {
	rabbitmq_booted || rabbitmq_boot_failed
	rabbitmq_listening
}

rabbitmq_boot_failed() {
	die "rabbitmq: await_startup failed; see $(rel "$RABBITMQ_STATE")/log and $(rel "$RABBITMQ_OUT")"
}

# rabbitmq_listening waits until the booted node answers AMQP.
rabbitmq_listening() {
	wait_until 30 "rabbitmq amqp listener" rabbitmq_amqp_answers \
		|| die "rabbitmq: node is up but $AMQP_HOST:$AMQP_PORT does not answer AMQP"
}

rabbitmq_start() {
	rabbitmq_install
	local pid
	if pid=$(rabbitmq_pid); then
		log "rabbitmq: already running (pid $pid, node $RABBITMQ_NODE)"
		rabbitmq_ready
		return 0
	fi
	if port_open "$AMQP_HOST" "$AMQP_PORT"; then
		rabbitmq_amqp_answers || die "rabbitmq: $AMQP_HOST:$AMQP_PORT is taken by a process that does not speak AMQP and was not started by these scripts"
		foreign rabbitmq "$AMQP_HOST:$AMQP_PORT"
		return 0
	fi
	port_open 127.0.0.1 "$((AMQP_PORT + 20000))" \
		&& die "rabbitmq: Erlang distribution port $((AMQP_PORT + 20000)) (AMQP port + 20000) is taken by a process not started by these scripts"
	mkdir -p "$RABBITMQ_STATE/mnesia" "$RABBITMQ_STATE/log"
	if [ ! -s "$RABBITMQ_STATE/.erlang.cookie" ]; then
		(umask 077 && head -c 32 /dev/urandom | sha256sum | cut -c1-32 >"$RABBITMQ_STATE/.erlang.cookie")
		chmod 400 "$RABBITMQ_STATE/.erlang.cookie"
	fi
	: >"$RABBITMQ_STATE/rabbitmq-env.conf"
	if [ -n "${SWITCHYARD_RABBITMQ_PLUGINS:-}" ]; then
		echo "[${SWITCHYARD_RABBITMQ_PLUGINS}]." >"$RABBITMQ_STATE/enabled_plugins"
	fi
	[ -f "$RABBITMQ_STATE/enabled_plugins" ] || echo '[].' >"$RABBITMQ_STATE/enabled_plugins"
	if [ -n "${SWITCHYARD_RABBITMQ_ADVANCED_CONFIG:-}" ]; then
		cp "$SWITCHYARD_RABBITMQ_ADVANCED_CONFIG" "$RABBITMQ_STATE/advanced.config" \
			|| die "rabbitmq: cannot copy SWITCHYARD_RABBITMQ_ADVANCED_CONFIG $SWITCHYARD_RABBITMQ_ADVANCED_CONFIG"
	fi
	cat >"$RABBITMQ_STATE/rabbitmq.conf" <<CONF
# Written by scripts/rabbitmq.sh on every start.
listeners.tcp.default = $AMQP_HOST:$AMQP_PORT
# The node logs to $(rel "$RABBITMQ_STATE")/log; $(rel "$RABBITMQ_OUT") keeps what it prints while booting.
log.console = false
CONF
	if [ -n "${SWITCHYARD_RABBITMQ_CONF_EXTRA:-}" ]; then
		{ echo "# From SWITCHYARD_RABBITMQ_CONF_EXTRA=$SWITCHYARD_RABBITMQ_CONF_EXTRA"; cat "$SWITCHYARD_RABBITMQ_CONF_EXTRA"; } \
			>>"$RABBITMQ_STATE/rabbitmq.conf" || die "rabbitmq: cannot read SWITCHYARD_RABBITMQ_CONF_EXTRA $SWITCHYARD_RABBITMQ_CONF_EXTRA"
	fi
	rabbitmq_boot
	# A node that died while booting (seen once in CI right after a
	# restart of a test's private node; its log is printed above) gets one
	# more boot on the same data before start gives up.
	if ! rabbitmq_booted; then
		rabbitmq_pid >/dev/null && rabbitmq_boot_failed
		log "rabbitmq: the node exited while booting; booting it once more"
		rabbitmq_boot
		rabbitmq_booted || rabbitmq_boot_failed
	fi
	rabbitmq_listening
}

# rabbitmq_boot starts our node and waits until its Erlang VM answers.
rabbitmq_boot() {
	local pid
	rm -f "$RABBITMQ_PIDFILE"
	log "rabbitmq: starting node $RABBITMQ_NODE in $(rel "$RABBITMQ_STATE")"
	daemon "$RABBITMQ_OUT" env "${RABBITMQ_ENV[@]}" "$RABBITMQ_BIN/rabbitmq-server"
	local deadline=$((SECONDS + 60))
	until pid=$(rabbitmq_pid) && rabbitmq_node_up; do
		[ "$SECONDS" -lt "$deadline" ] || { tail -n 30 "$RABBITMQ_OUT" >&2; die "rabbitmq: node did not come up in 60s; see $(rel "$RABBITMQ_OUT")"; }
		sleep 0.5
	done
}

rabbitmq_stop() {
	local pid
	if ! pid=$(rabbitmq_pid); then
		rm -f "$RABBITMQ_PIDFILE"
		if port_open "$AMQP_HOST" "$AMQP_PORT"; then
			log "rabbitmq: $AMQP_HOST:$AMQP_PORT is served by a server these scripts did not start; leaving it running"
		else
			log "rabbitmq: not running"
		fi
		return 0
	fi
	log "rabbitmq: stopping node $RABBITMQ_NODE (pid $pid)"
	# shutdown waits for the Erlang VM to exit; it reaches only our node (our cookie).
	rabbitmq_ctl -q shutdown >/dev/null 2>&1 || true
	stop_pid rabbitmq "$pid"
	rm -f "$RABBITMQ_PIDFILE"
}

# rabbitmq_restart stops our node and starts it again on the same data, so
# durable queues and their messages survive: fault tests bounce the broker
# mid-stream. It refuses a server we did not start; with nothing running it
# is rabbitmq_start.
rabbitmq_restart() {
	if ! rabbitmq_pid >/dev/null && port_open "$AMQP_HOST" "$AMQP_PORT"; then
		refuse_restart rabbitmq "$AMQP_HOST:$AMQP_PORT"
	fi
	rabbitmq_stop
	rabbitmq_start
}

rabbitmq_status() {
	local pid
	if pid=$(rabbitmq_pid) && rabbitmq_amqp_answers; then
		echo "rabbitmq: running (pid $pid, node $RABBITMQ_NODE), AMQP on $AMQP_HOST:$AMQP_PORT (user guest)"
	elif rabbitmq_amqp_answers; then
		echo "rabbitmq: running, AMQP on $AMQP_HOST:$AMQP_PORT, not started by these scripts"
	else
		echo "rabbitmq: stopped"
		return 3
	fi
}

rabbitmq_where() {
	local who
	who="node $RABBITMQ_NODE, log $(rel "$RABBITMQ_STATE")/log"
	rabbitmq_pid >/dev/null || who="not started by these scripts"
	echo "rabbitmq  $AMQP_HOST:$AMQP_PORT  amqp, user guest, vhost /; $who"
}
