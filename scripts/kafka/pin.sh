#!/usr/bin/env bash
# scripts/kafka/pin.sh: rewrite scripts/kafka/jars.sha256, the SHA-256 of
# every jar scripts/kafka.sh runs the broker from. Run it after a deliberate
# change of scripts/kafka/pom.xml (a new Kafka version) and commit the result.
#
# It resolves pom.xml into an empty, throwaway Maven repository, so every
# artifact is downloaded from Maven Central, and Maven's strict checksums (-C)
# refuse any whose published .sha1 does not match; it then checks each jar
# against that .sha1 once more before recording its SHA-256.
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
. "$REPO/scripts/lib/kafka.sh"

tmp=$(mktemp -d "$CACHE/kafka-pin.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log "kafka: resolving $(rel "$KAFKA_SRC")/pom.xml into an empty Maven repository"
kafka_mvn_copy "$tmp/libs" -Dmaven.repo.local="$tmp/m2" \
	|| die "kafka: mvn dependency:copy-dependencies failed; full log in $(rel "$CACHE")/kafka/mvn.log"

cd "$tmp/libs" || exit 1
for jar in *.jar; do
	mapfile -t sha1s < <(find "$tmp/m2" -name "$jar.sha1")
	[ "${#sha1s[@]}" = 1 ] || die "kafka: want one $jar.sha1 from Maven Central in the throwaway repository, found ${#sha1s[@]}"
	want=$(awk '{ print $1; exit }' "${sha1s[0]}")
	got=$(sha1sum "$jar" | cut -d' ' -f1)
	[ "$want" = "$got" ] || die "kafka: $jar has SHA-1 $got, Maven Central publishes $want"
done
{
	echo "# SHA-256 of the jars scripts/kafka.sh runs the broker from (scripts/kafka/pom.xml"
	echo "# resolved on Maven Central, each checked against its published .sha1)."
	echo "# Written by scripts/kafka/pin.sh; scripts/kafka.sh refuses jars that differ."
	sha256sum ./*.jar | sed 's#  \./#  #' | sort -k2
} >"$KAFKA_SUMS"
log "kafka: pinned $(grep -vc '^#' "$KAFKA_SUMS") jars in $(rel "$KAFKA_SUMS")"
