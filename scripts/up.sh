#!/usr/bin/env bash
# scripts/up.sh [rabbitmq|kafka|postgres ...]: install what is missing and
# start what is stopped (all three servers when no name is given), wait until
# each really answers (Kafka: until a consumer group can join and commit),
# then write .work/env with the SWITCHYARD_TEST_* exports the integration
# tests read. It also installs Debian's chromium when missing, the browser
# of the dashboard's tests. Idempotent: a second run restarts nothing.
#
# A server these scripts did not start that already answers on a port is
# used as it is (the log says so) and never stopped or restarted. To run a
# separate set beside it, pick other ports and another state folder:
#
#	scripts/up.sh && . .work/env && go test -race ./...
#	SWITCHYARD_WORK=/tmp/sy SWITCHYARD_AMQP_PORT=5682 SWITCHYARD_KAFKA_PORT=9192 \
#		SWITCHYARD_POSTGRES_PORT=5442 scripts/up.sh    # then . /tmp/sy/env
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${SERVICES[@]}")
for n in "${names[@]}"; do load_service "$n"; done

start=$SECONDS
# shellcheck source=lib/chromium.sh
. "$REPO/scripts/lib/chromium.sh"
chromium_install
for n in "${names[@]}"; do "${n}_start"; done
write_env
log "up in $((SECONDS - start))s; environment in ${WORK#"$REPO"/}/env:"
for n in "${names[@]}"; do echo "  $("${n}_where")"; done
sed -n 's/^export /  /p' "$WORK/env"
