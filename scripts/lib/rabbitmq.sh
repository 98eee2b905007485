# shellcheck shell=bash
# RabbitMQ from Debian's rabbitmq-server package, run without systemd.
# Source scripts/lib/common.sh first.

rabbitmq_install() {
	command -v rabbitmq-server >/dev/null 2>&1 || apt_install rabbitmq-server
}

# rabbitmq_node_up succeeds when the Erlang node answers (it may still be booting).
rabbitmq_node_up() {
	rabbitmqctl -q ping >/dev/null 2>&1
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

rabbitmq_start() {
	rabbitmq_install
	# Fast path: only a booted broker sends Connection.Start.
	if rabbitmq_amqp_answers; then
		log "rabbitmq: already running"
		return 0
	fi
	if rabbitmq_node_up; then
		log "rabbitmq: node up, waiting for it to finish booting"
	else
		log "rabbitmq: starting"
		# The Debian wrapper switches to the rabbitmq user; the environment passes through.
		(cd / && RABBITMQ_NODE_IP_ADDRESS="$AMQP_HOST" RABBITMQ_NODE_PORT="$AMQP_PORT" rabbitmq-server -detached)
		wait_until 60 "rabbitmq node" rabbitmq_node_up || die "rabbitmq: node did not come up; see /var/log/rabbitmq/"
	fi
	rabbitmqctl -q await_startup --timeout 120 >/dev/null || die "rabbitmq: await_startup failed; see /var/log/rabbitmq/"
	wait_until 30 "rabbitmq amqp listener" rabbitmq_amqp_answers \
		|| die "rabbitmq: node is up but $AMQP_HOST:$AMQP_PORT does not answer AMQP"
}

rabbitmq_stop() {
	if ! command -v rabbitmqctl >/dev/null 2>&1 || ! rabbitmq_node_up; then
		log "rabbitmq: not running"
		return 0
	fi
	log "rabbitmq: stopping"
	# shutdown waits for the Erlang VM to exit; stop only asks it to.
	rabbitmqctl -q shutdown >/dev/null 2>&1 || rabbitmqctl -q stop >/dev/null 2>&1 || true
	wait_until 60 "rabbitmq stop" eval '! rabbitmq_node_up && ! port_open "$AMQP_HOST" "$AMQP_PORT"' \
		|| die "rabbitmq: still running after stop"
}

rabbitmq_status() {
	if rabbitmq_amqp_answers; then
		echo "rabbitmq: running, AMQP on $AMQP_HOST:$AMQP_PORT (user guest)"
	else
		echo "rabbitmq: stopped"
		return 3
	fi
}

rabbitmq_where() { echo "rabbitmq  $AMQP_HOST:$AMQP_PORT  amqp, user guest, vhost /"; }
