#!/usr/bin/env bash
# scripts/down.sh [rabbitmq|kafka|postgres ...]: stop the servers scripts/up.sh
# started from this state folder (all three when no name is given) and
# rewrite .work/env. Servers these scripts did not start are left running.
# Data and downloaded jars are kept, so the next up is fast.
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${SERVICES[@]}")
for n in "${names[@]}"; do load_service "$n"; done
for n in "${names[@]}"; do "${n}_stop"; done
write_env
