#!/usr/bin/env bash
# scripts/cluster.sh: three-node Kafka (KRaft) and RabbitMQ clusters on
# loopback, beside the single-node servers of scripts/up.sh (other ports,
# state in .work/cluster). `make up CLUSTER=3` runs `scripts/cluster.sh up`.
#
#	scripts/cluster.sh up [kafka|rabbitmq]      install, start what is stopped, form
#	                                            the clusters, wait, write .work/cluster/env
#	scripts/cluster.sh down [kafka|rabbitmq]    stop the nodes this script started
#	scripts/cluster.sh status
#	scripts/cluster.sh kill kafka|rabbitmq N    SIGKILL node N (1..3), nothing else
#	scripts/cluster.sh start kafka|rabbitmq N   start node N again and wait until the
#	                                            cluster is whole (all replicas in sync)
#	scripts/cluster.sh stop kafka|rabbitmq N    stop node N gracefully
#	scripts/cluster.sh rabbitmqctl N ARGS...    rabbitmqctl against node N
#	scripts/cluster.sh rabbitmq-queues N ARGS... rabbitmq-queues against node N
#
# Idempotent: up twice restarts nothing. Only processes whose pid is in a
# pid file under .work/cluster and that run on its files are stopped or
# killed. Ready means: all nodes running; Kafka: three brokers registered
# and a topic with three replicas has them all in sync and serves a
# consumer group; RabbitMQ: one cluster of three running nodes, and a
# quorum queue declared on node 1 takes a confirmed publish that node 3
# serves. See scripts/lib/cluster.sh for ports and sizing, docs/clusters.md.
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/cluster.sh
. "$REPO/scripts/lib/cluster.sh"

services() {
	case "${1:-}" in
	'') echo rabbitmq kafka ;;
	kafka | rabbitmq) echo "$1" ;;
	*) die "service \"$1\": want kafka or rabbitmq" ;;
	esac
}

status() {
	local n pid rc=0
	for n in "${CLUSTER_NODES[@]}"; do
		if pid=$(ckafka_pid "$n"); then
			echo "kafka-$n     running (pid $pid), $KAFKA_HOST:$(ckafka_port "$n"), controller :$(ckafka_cport "$n")"
		else
			echo "kafka-$n     stopped"; rc=3
		fi
	done
	for n in "${CLUSTER_NODES[@]}"; do
		if pid=$(crabbit_pid "$n"); then
			echo "rabbitmq-$n  running (pid $pid), $AMQP_HOST:$(crabbit_port "$n"), node $(crabbit_node "$n")"
		else
			echo "rabbitmq-$n  stopped"; rc=3
		fi
	done
	return $rc
}

action=${1:-}
shift || true
case "$action" in
up)
	start=$SECONDS
	for s in $(services "${1:-}"); do
		case $s in
		kafka) ckafka_start_all ;;
		rabbitmq) crabbit_start_all ;;
		esac
	done
	cluster_write_env
	log "cluster: up in $((SECONDS - start))s; environment in $(rel "$CLUSTER_ENV"):"
	sed -n 's/^export /  /p' "$CLUSTER_ENV"
	;;
down)
	for s in $(services "${1:-}"); do
		case $s in
		kafka)
			# All at once: the last KRaft node stopped alone has no
			# controller quorum left and cannot finish its controlled
			# shutdown (it would wait out stop_pid's 60s).
			pids=()
			for n in "${CLUSTER_NODES[@]}"; do ckafka_stop_node "$n" & pids+=($!); done
			for p in "${pids[@]}"; do wait "$p"; done
			;;
		rabbitmq) for n in "${CLUSTER_NODES[@]}"; do crabbit_stop_node "$n"; done ;;
		esac
	done
	cluster_write_env
	;;
status) status ;;
kill)
	[ $# = 2 ] || die "usage: scripts/cluster.sh kill kafka|rabbitmq N"
	cluster_kill "$1" "$2"
	;;
start | stop)
	[ $# = 2 ] || die "usage: scripts/cluster.sh $action kafka|rabbitmq N"
	_check_node "$2"
	case "$action-$1" in
	start-kafka) ckafka_start_node "$2" ;;
	start-rabbitmq) crabbit_start_node "$2" ;;
	stop-kafka) ckafka_stop_node "$2" ;;
	stop-rabbitmq) crabbit_stop_node "$2" ;;
	*) die "service \"$1\": want kafka or rabbitmq" ;;
	esac
	cluster_write_env
	;;
rabbitmqctl | rabbitmq-queues)
	[ $# -ge 1 ] || die "usage: scripts/cluster.sh $action N ARGS..."
	_check_node "$1"
	crabbit_tool "$action" "$@"
	;;
*)
	sed -n '2,22s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit 2
	;;
esac
