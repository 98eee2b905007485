#!/usr/bin/env bash
# scripts/up.sh [rabbitmq|kafka|postgres ...]: install what is missing and
# start what is stopped (all three servers when no name is given), wait until
# each really answers, then write .work/env with the SWITCHYARD_TEST_* exports
# the integration tests read. Idempotent: a second run restarts nothing.
#
#	scripts/up.sh && . .work/env && go test -race ./...
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${SERVICES[@]}")
for n in "${names[@]}"; do load_service "$n"; done

start=$SECONDS
for n in "${names[@]}"; do "${n}_start"; done
write_env
log "up in $((SECONDS - start))s; environment in ${WORK#"$REPO"/}/env:"
for n in "${names[@]}"; do echo "  $("${n}_where")"; done
sed -n 's/^export /  /p' "$WORK/env"
