#!/usr/bin/env bash
# scripts/rabbitmq.sh start|stop|restart|status: manage the rabbitmq server the tests use.
# start installs what is missing, starts it if stopped and waits until it
# answers; restart is what fault tests use to bounce the broker mid-stream.
# stop and restart act only on a server these scripts started (pid file and
# data under .work/rabbitmq); restart refuses any other. start, stop and restart
# rewrite .work/env. See scripts/lib/rabbitmq.sh.
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
service_main rabbitmq "$@"
