#!/usr/bin/env bash
# scripts/rabbitmqctl.sh ARGS...: rabbitmqctl for the RabbitMQ node the tests
# use. When these scripts started it, that node has its own name, Erlang
# cookie and HOME (see scripts/lib/rabbitmq.sh), which a plain rabbitmqctl
# cannot reach; otherwise it is the machine's node and plain rabbitmqctl.
# .work/env exports it as SWITCHYARD_TEST_RABBITMQCTL for tests that force
# disconnects.
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
load_service rabbitmq
if rabbitmq_pid >/dev/null; then
	rabbitmq_ctl "$@"
else
	exec rabbitmqctl "$@"
fi
