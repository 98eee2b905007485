# shellcheck shell=bash
# Three-node Kafka (KRaft) and RabbitMQ clusters on loopback, for the
# cluster fault scenarios and tests (scripts/cluster.sh). Source
# scripts/lib/common.sh first. Everything lives under .work/cluster:
#
#	kafka-N/      server.properties, data/, server.log, kafka.pid   (N = 1..3)
#	rabbitmq/     the shared HOME with the cluster's Erlang cookie
#	rabbitmq-N/   mnesia/, log/, rabbitmq.conf, rabbitmq.pid
#	env           SWITCHYARD_TEST_CLUSTER_* exports (source it)
#
# Ports (loopback; override the bases with SWITCHYARD_CLUSTER_KAFKA_PORT,
# SWITCHYARD_CLUSTER_KAFKA_CONTROLLER_PORT, SWITCHYARD_CLUSTER_AMQP_PORT):
# Kafka brokers 19092..19094, controllers 19192..19194; RabbitMQ AMQP
# 5701..5703, Erlang distribution AMQP + 20000 (25701..25703).
#
# Sizing for a shared 2-core machine: Kafka heaps of 384m
# (SWITCHYARD_CLUSTER_KAFKA_HEAP), one network thread and two I/O threads
# per node; Erlang with one scheduler and no busy waiting.
#
# Ownership as in common.sh: only a process whose pid is in our pid file
# and that runs on our files is ever stopped or killed.

CLUSTER_NODES=(1 2 3)
CLUSTER_STATE="$WORK/cluster"
CLUSTER_ENV="$CLUSTER_STATE/env"
_cport() {
	[[ $2 =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] && [ "$2" -le "$3" ] || die "$1=$2: want a TCP port from 1 to $3"
	printf -v "$1" %s "$2"
}
_cport CLUSTER_KAFKA_PORT "${SWITCHYARD_CLUSTER_KAFKA_PORT:-19092}" 65000
_cport CLUSTER_KAFKA_CONTROLLER_PORT "${SWITCHYARD_CLUSTER_KAFKA_CONTROLLER_PORT:-$((CLUSTER_KAFKA_PORT + 100))}" 65000
_cport CLUSTER_AMQP_PORT "${SWITCHYARD_CLUSTER_AMQP_PORT:-5701}" 45000
unset -f _cport

# The cluster uses the single-node scripts' installers (jars, Java, Debian's
# rabbitmq-server); their variables name the single node and are not used here.
KAFKA_HEAP=${SWITCHYARD_CLUSTER_KAFKA_HEAP:-384m}
# shellcheck source=kafka.sh
. "$REPO/scripts/lib/kafka.sh"
# shellcheck source=rabbitmq.sh
. "$REPO/scripts/lib/rabbitmq.sh"

# Its own build of scripts/kafkaready (it needs -replicas), so the
# single-node scripts' binary in a shared cache is never replaced under them.
KAFKAREADY="$CACHE/bin/kafkaready-cluster"
# Another fixed cluster id ("switchyard-clus3" in base64url) than the single node's.
CLUSTER_KAFKA_ID=c3dpdGNoeWFyZC1jbHVzMw
CLUSTER_AMQPREADY="$CACHE/bin/amqpready"

_check_node() {
	case " ${CLUSTER_NODES[*]} " in
	*" $1 "*) ;;
	*) die "node \"$1\": want one of ${CLUSTER_NODES[*]}" ;;
	esac
}

# ---- Kafka ----------------------------------------------------------------

ckafka_port() { echo $((CLUSTER_KAFKA_PORT + $1 - 1)); }
ckafka_cport() { echo $((CLUSTER_KAFKA_CONTROLLER_PORT + $1 - 1)); }
ckafka_dir() { echo "$CLUSTER_STATE/kafka-$1"; }
ckafka_brokers() {
	local n out=()
	for n in "${CLUSTER_NODES[@]}"; do out+=("$KAFKA_HOST:$(ckafka_port "$n")"); done
	(IFS=,; echo "${out[*]}")
}

# ckafka_pid N prints the pid of our node N.
ckafka_pid() {
	local pid dir
	dir=$(ckafka_dir "$1")
	pid=$(pid_from_file "$dir/kafka.pid") && proc_has "$pid" "$dir/server.properties" || return 1
	echo "$pid"
}

# ckafka_launch N writes node N's config, formats its storage once and
# starts it (without waiting). A running node of ours is left alone.
ckafka_launch() {
	local n=$1 dir port cport voters='' m pid
	dir=$(ckafka_dir "$n") port=$(ckafka_port "$n") cport=$(ckafka_cport "$n")
	if pid=$(ckafka_pid "$n"); then
		log "cluster: kafka-$n already running (pid $pid)"
		return 0
	fi
	for p in "$port" "$cport"; do
		port_open "$KAFKA_HOST" "$p" && die "cluster: kafka-$n port $p is taken by a process these scripts did not start (set SWITCHYARD_CLUSTER_KAFKA_PORT)"
	done
	for m in "${CLUSTER_NODES[@]}"; do voters+="${voters:+,}$m@$KAFKA_HOST:$(ckafka_cport "$m")"; done
	mkdir -p "$dir/data"
	sed -e "s#@NODE_ID@#$n#" -e "s#@DATA_DIR@#$dir/data#" -e "s#@HOST@#$KAFKA_HOST#g" \
		-e "s#@PORT@#$port#g" -e "s#@CONTROLLER_PORT@#$cport#g" -e "s#@VOTERS@#$voters#" \
		"$REPO/scripts/cluster/kafka.properties" >"$dir/server.properties"
	if [ ! -f "$dir/data/meta.properties" ]; then
		"${KAFKA_JAVA[@]}" -Dswitchyard.kafka.loglevel=warn kafka.tools.StorageTool format \
			-t "$CLUSTER_KAFKA_ID" -c "$dir/server.properties" >"$dir/format.log" 2>&1 \
			|| { cat "$dir/format.log" >&2; die "cluster: kafka-$n storage format failed"; }
	fi
	[ -f "$dir/server.log" ] && mv -f "$dir/server.log" "$dir/server.log.1"
	log "cluster: starting kafka-$n on $KAFKA_HOST:$port (controller :$cport)"
	daemon "$dir/server.log" "${KAFKA_JAVA[@]}" kafka.Kafka "$dir/server.properties"
	echo "$DAEMON_PID" >"$dir/kafka.pid"
}

# ckafka_wait_node N waits until node N answers metadata itself.
ckafka_wait_node() {
	local n=$1 pid deadline=$((SECONDS + 180))
	until "$KAFKAREADY" -q -brokers "$KAFKA_HOST:$(ckafka_port "$n")" -timeout 3s 2>/dev/null; do
		pid=$(ckafka_pid "$n") || { tail -n 20 "$(ckafka_dir "$n")/server.log" >&2; die "cluster: kafka-$n exited during startup"; }
		[ "$SECONDS" -lt "$deadline" ] || die "cluster: kafka-$n does not answer after 180s; see $(rel "$(ckafka_dir "$n")")/server.log"
	done
}

# ckafka_ready waits until all three brokers are registered and a topic
# with three replicas has them all in sync and serves a consumer group.
ckafka_ready() {
	"$KAFKAREADY" -q -smoke -replicas 3 -brokers "$(ckafka_brokers)" -timeout "${1:-120s}" \
		|| die "cluster: the Kafka cluster did not form (3 brokers, a topic with 3 in-sync replicas, a group commit)"
}

ckafka_start_all() {
	kafka_install
	local n
	for n in "${CLUSTER_NODES[@]}"; do ckafka_launch "$n"; done
	for n in "${CLUSTER_NODES[@]}"; do ckafka_wait_node "$n"; done
	ckafka_ready
}

# ckafka_start_node N starts node N again (after a kill) and waits until
# the cluster has all three brokers and full ISRs again.
ckafka_start_node() {
	kafka_install
	ckafka_launch "$1"
	ckafka_wait_node "$1"
	ckafka_ready
}

# ckafka_stop_node N [SECONDS] stops node N gracefully (controlled shutdown).
ckafka_stop_node() {
	local pid
	if pid=$(ckafka_pid "$1"); then
		log "cluster: stopping kafka-$1 (pid $pid)"
		stop_pid "kafka-$1" "$pid" "${2:-60}"
	fi
	rm -f "$(ckafka_dir "$1")/kafka.pid"
}

# ---- RabbitMQ -------------------------------------------------------------

crabbit_port() { echo $((CLUSTER_AMQP_PORT + $1 - 1)); }
crabbit_dir() { echo "$CLUSTER_STATE/rabbitmq-$1"; }
# Node names carry a hash of the state folder: two checkouts never share one.
crabbit_node() { echo "switchyard-c$1-$(printf %s "$CLUSTER_STATE" | sha256sum | cut -c1-8)@localhost"; }
crabbit_nodes() {
	local n out=()
	for n in "${CLUSTER_NODES[@]}"; do out+=("$(crabbit_node "$n")"); done
	(IFS=,; echo "${out[*]}")
}
crabbit_urls() {
	local n out=()
	for n in "${CLUSTER_NODES[@]}"; do out+=("amqp://guest:guest@$AMQP_HOST:$(crabbit_port "$n")/"); done
	(IFS=,; echo "${out[*]}")
}

# crabbit_env N prints node N's environment, one VAR=value a line.
crabbit_env() {
	local n=$1 dir port
	dir=$(crabbit_dir "$n") port=$(crabbit_port "$n")
	printf '%s\n' \
		"HOME=$CLUSTER_STATE/rabbitmq" \
		"RABBITMQ_NODENAME=$(crabbit_node "$n")" \
		"RABBITMQ_NODE_IP_ADDRESS=$AMQP_HOST" "RABBITMQ_NODE_PORT=$port" \
		"RABBITMQ_DIST_PORT=$((port + 20000))" \
		"RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf" \
		"RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf" \
		"RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config" \
		"RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins" \
		"RABBITMQ_MNESIA_BASE=$dir/mnesia" \
		"RABBITMQ_LOG_BASE=$dir/log" \
		"RABBITMQ_PID_FILE=$dir/rabbitmq.pid" \
		"ERL_CRASH_DUMP=$dir/erl_crash.dump" \
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1} +S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none"
}

# crabbit_ctl N ARGS... runs rabbitmqctl against node N.
crabbit_ctl() { crabbit_tool rabbitmqctl "$@"; }

# crabbit_tool TOOL N ARGS...: a RabbitMQ CLI tool (rabbitmqctl,
# rabbitmq-queues) against node N.
crabbit_tool() {
	local tool=$1 n=$2
	shift 2
	local envs
	mapfile -t envs < <(crabbit_env "$n")
	env "${envs[@]}" "$RABBITMQ_BIN/$tool" "$@"
}

crabbit_pid() {
	local pid dir
	dir=$(crabbit_dir "$1")
	pid=$(pid_from_file "$dir/rabbitmq.pid") && proc_has "$pid" "$dir/mnesia" || return 1
	echo "$pid"
}

# crabbit_launch N starts node N (without waiting). A running node of ours is left alone.
crabbit_launch() {
	local n=$1 dir port pid envs
	dir=$(crabbit_dir "$n") port=$(crabbit_port "$n")
	if pid=$(crabbit_pid "$n"); then
		log "cluster: rabbitmq-$n already running (pid $pid)"
		return 0
	fi
	for p in "$port" "$((port + 20000))"; do
		port_open "$AMQP_HOST" "$p" && die "cluster: rabbitmq-$n port $p is taken by a process these scripts did not start (set SWITCHYARD_CLUSTER_AMQP_PORT)"
	done
	mkdir -p "$dir/mnesia" "$dir/log" "$CLUSTER_STATE/rabbitmq"
	if [ ! -s "$CLUSTER_STATE/rabbitmq/.erlang.cookie" ]; then
		(umask 077 && head -c 32 /dev/urandom | sha256sum | cut -c1-32 >"$CLUSTER_STATE/rabbitmq/.erlang.cookie")
		chmod 400 "$CLUSTER_STATE/rabbitmq/.erlang.cookie"
	fi
	: >"$dir/rabbitmq-env.conf"
	[ -f "$dir/enabled_plugins" ] || echo '[].' >"$dir/enabled_plugins"
	cat >"$dir/rabbitmq.conf" <<CONF
# Written by scripts/cluster.sh on every start of node $n.
listeners.tcp.default = $AMQP_HOST:$port
log.console = false
CONF
	# A peer that stops answering is declared down after about this long
	# (default 60s). kill -9 closes the distribution sockets, so the
	# survivors notice it at once; this bounds a hang's failover.
	printf '[{kernel, [{net_ticktime, 15}]}].\n' >"$dir/advanced.config"
	rm -f "$dir/rabbitmq.pid"
	mapfile -t envs < <(crabbit_env "$n")
	log "cluster: starting rabbitmq-$n ($(crabbit_node "$n")) on $AMQP_HOST:$port"
	daemon "$dir/server.out" env "${envs[@]}" "$RABBITMQ_BIN/rabbitmq-server"
}

# crabbit_wait_node N waits until node N has booted and answers AMQP.
crabbit_wait_node() {
	local n=$1 deadline=$((SECONDS + 120))
	until crabbit_pid "$n" >/dev/null && crabbit_ctl "$n" -q ping >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$deadline" ] || { tail -n 20 "$(crabbit_dir "$n")/server.out" >&2; die "cluster: rabbitmq-$n did not come up in 120s"; }
		sleep 0.5
	done
	crabbit_ctl "$n" -q await_startup --timeout 300 >/dev/null 2>&1 \
		|| die "cluster: rabbitmq-$n await_startup failed; see $(rel "$(crabbit_dir "$n")")/log"
}

# crabbit_join N makes node N a member of node 1's cluster, once.
crabbit_join() {
	local n=$1 first
	first=$(crabbit_node 1)
	if crabbit_ctl "$n" -q cluster_status --formatter json 2>/dev/null | grep -qF "\"$first\""; then
		return 0
	fi
	log "cluster: joining rabbitmq-$n to $first"
	crabbit_ctl "$n" -q stop_app >/dev/null
	crabbit_ctl "$n" -q join_cluster "$first" >/dev/null || die "cluster: rabbitmq-$n cannot join $first"
	crabbit_ctl "$n" -q start_app >/dev/null
}

# crabbit_running prints how many nodes node 1 sees running.
crabbit_running() {
	crabbit_ctl 1 -q cluster_status --formatter json 2>/dev/null |
		sed -n 's/.*"running_nodes":\[\([^]]*\)\].*/\1/p' | tr ',' '\n' | grep -c .
}

# crabbit_ready waits until all three nodes run in one cluster and a quorum
# queue declared on node 1 takes a confirmed publish and serves it on node 3.
crabbit_ready() {
	wait_until 120 "rabbitmq cluster of 3" eval '[ "$(crabbit_running)" = 3 ]' \
		|| die "cluster: RabbitMQ nodes run but do not form one cluster of 3 (rabbitmqctl cluster_status)"
	"$CLUSTER_AMQPREADY" -q -urls "$(crabbit_urls)" -timeout 120s \
		|| die "cluster: the RabbitMQ cluster does not serve a quorum queue"
}

crabbit_install() {
	rabbitmq_install
	mkdir -p "$CACHE/bin"
	(cd "$REPO" && go build -o "$CLUSTER_AMQPREADY" ./scripts/amqpready) || die "cluster: cannot build scripts/amqpready"
}

crabbit_start_all() {
	crabbit_install
	local n
	# All at once: a node restarted after a full stop waits for its peers.
	for n in "${CLUSTER_NODES[@]}"; do crabbit_launch "$n"; done
	for n in "${CLUSTER_NODES[@]}"; do crabbit_wait_node "$n"; done
	for n in "${CLUSTER_NODES[@]:1}"; do crabbit_join "$n"; done
	crabbit_ready
}

crabbit_start_node() {
	crabbit_install
	crabbit_launch "$1"
	crabbit_wait_node "$1"
	crabbit_ready
}

crabbit_stop_node() {
	local pid
	if pid=$(crabbit_pid "$1"); then
		log "cluster: stopping rabbitmq-$1 (pid $pid)"
		crabbit_ctl "$1" -q shutdown >/dev/null 2>&1 || true
		stop_pid "rabbitmq-$1" "$pid" "${2:-60}"
	fi
	rm -f "$(crabbit_dir "$1")/rabbitmq.pid"
}

# ---- both -----------------------------------------------------------------

# cluster_kill SERVICE N kills node N with SIGKILL (no shutdown at all).
cluster_kill() {
	local pid
	_check_node "$2"
	case $1 in
	kafka) pid=$(ckafka_pid "$2") || die "cluster: kafka-$2 is not running" ;;
	rabbitmq) pid=$(crabbit_pid "$2") || die "cluster: rabbitmq-$2 is not running" ;;
	*) die "service \"$1\": want kafka or rabbitmq" ;;
	esac
	kill -KILL "$pid"
	wait_until 10 "$1-$2 kill" eval "! kill -0 $pid" || die "cluster: $1-$2 (pid $pid) survives SIGKILL"
	log "cluster: killed $1-$2 (pid $pid) with SIGKILL"
}

# cluster_write_env writes .work/cluster/env for the nodes that answer.
cluster_write_env() {
	local tmp="$CLUSTER_ENV.tmp.$$" n up_k=0 up_r=0
	for n in "${CLUSTER_NODES[@]}"; do
		port_open "$KAFKA_HOST" "$(ckafka_port "$n")" && up_k=$((up_k + 1))
		port_open "$AMQP_HOST" "$(crabbit_port "$n")" && up_r=$((up_r + 1))
	done
	mkdir -p "$CLUSTER_STATE"
	{
		echo "# Written by scripts/cluster.sh: the three-node test clusters. Source it: . $(rel "$CLUSTER_ENV")"
		echo "# Kill a node: scripts/cluster.sh kill kafka|rabbitmq N; start it again: scripts/cluster.sh start kafka|rabbitmq N"
		echo "export SWITCHYARD_TEST_CLUSTER=${#CLUSTER_NODES[@]}"
		echo "export SWITCHYARD_TEST_CLUSTER_SCRIPT='$REPO/scripts/cluster.sh'"
		echo "export SWITCHYARD_TEST_CLUSTER_WORK='$WORK'"
		[ "$up_k" -gt 0 ] && echo "export SWITCHYARD_TEST_CLUSTER_KAFKA_BROKERS='$(ckafka_brokers)'"
		[ "$up_r" -gt 0 ] && echo "export SWITCHYARD_TEST_CLUSTER_AMQP_URLS='$(crabbit_urls)'"
		[ "$up_r" -gt 0 ] && echo "export SWITCHYARD_TEST_CLUSTER_AMQP_NODES='$(crabbit_nodes)'"
		true
	} >"$tmp"
	mv "$tmp" "$CLUSTER_ENV"
}
