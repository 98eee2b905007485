# shellcheck shell=bash
# Single-node KRaft Kafka broker from the Maven Central jars, run on the
# installed Java 17. Source scripts/lib/common.sh first.
#
# Files: scripts/kafka/pom.xml (which jars), scripts/kafka/jars.sha256 (their
# pinned checksums), scripts/kafka/server.properties (config template),
# scripts/kafka/log4j2.properties (logging); the jars go to .cache/kafka/libs,
# state to .work/kafka (data/, server.log, kafka.pid).

KAFKA_SRC="$REPO/scripts/kafka"
KAFKA_SUMS="$KAFKA_SRC/jars.sha256"
KAFKA_LIBS="$CACHE/kafka/libs"
KAFKA_STATE="$WORK/kafka"
KAFKA_DATA="$KAFKA_STATE/data"
KAFKA_PIDFILE="$KAFKA_STATE/kafka.pid"
KAFKA_LOG="$KAFKA_STATE/server.log"
KAFKA_CONFIG="$KAFKA_STATE/server.properties"
KAFKAREADY="$CACHE/bin/kafkaready"
# A fixed cluster id ("switchyard-test1" in base64url) keeps formatting reproducible.
KAFKA_CLUSTER_ID=c3dpdGNoeWFyZC10ZXN0MQ
# Heap: every subscription creates its group's retry topics (a topic per
# delay tier), so a long test run holds thousands of partitions; 512m ran
# out of heap on a shared machine with ~12,000 of them. The machine has 24 GiB.
KAFKA_HEAP=${KAFKA_HEAP:-1g}

# kafka_find_java sets KAFKA_JAVA_BIN to a java of version 17 or newer
# ($JAVA_HOME's, the one on PATH, or Debian's openjdk 17) and fails when
# there is none.
kafka_find_java() {
	local j v
	for j in "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java 2>/dev/null)" /usr/lib/jvm/java-17-openjdk-*/bin/java; do
		[ -n "$j" ] && [ -x "$j" ] || continue
		v=$("$j" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
		if [ "${v%%.*}" -ge 17 ] 2>/dev/null; then
			KAFKA_JAVA_BIN=$j
			return 0
		fi
	done
	return 1
}

# kafka_verify_jars DIR succeeds when DIR holds exactly the jars listed in
# scripts/kafka/jars.sha256, each with its pinned SHA-256; otherwise it says
# which jar is wrong, missing or unexpected.
kafka_verify_jars() {
	local dir=$1 out extra
	if ! out=$(cd "$dir" && sha256sum --strict -c "$KAFKA_SUMS" 2>&1); then
		log "kafka: jars in $(rel "$dir") do not match $(rel "$KAFKA_SUMS"):"
		grep -v ': OK$' <<<"$out" | sed 's/^/  /' >&2
		return 1
	fi
	extra=$(comm -13 <(grep -v '^#' "$KAFKA_SUMS" | awk '{ print $2 }' | sort) \
		<(cd "$dir" && find . -maxdepth 1 -name '*.jar' -printf '%f\n' | sort) | tr '\n' ' ')
	if [ -n "$extra" ]; then
		log "kafka: jars in $(rel "$dir") not listed in $(rel "$KAFKA_SUMS"): $extra"
		return 1
	fi
}

# kafka_mvn_copy DIR [MVN ARGS...] copies kafka_2.13 and its runtime
# dependencies into DIR with Maven. -C (strict checksums): Maven refuses
# any artifact it downloads whose .sha1 published beside it on Maven Central
# does not match.
kafka_mvn_copy() {
	local dir=$1
	shift
	command -v mvn >/dev/null 2>&1 || apt_install maven
	[ -n "${KAFKA_JAVA_BIN:-}" ] || kafka_find_java || die "kafka: Maven needs java 17 or newer"
	mkdir -p "$CACHE/kafka"
	# Maven runs on the java the broker uses, on PATH or not.
	if ! JAVA_HOME="${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$KAFKA_JAVA_BIN")")")}" mvn -B -q -C -Dstyle.color=never "$@" -f "$KAFKA_SRC/pom.xml" dependency:copy-dependencies \
		-Dlibs.dir="$dir" >"$CACHE/kafka/mvn.log" 2>&1; then
		tail -n 30 "$CACHE/kafka/mvn.log" >&2
		return 1
	fi
}

# kafka_fetch makes .cache/kafka/libs hold exactly the pinned jars: it keeps
# what is there when it verifies, else fetches them again with Maven and
# refuses (leaving nothing behind) when a fetched jar does not match its pin.
kafka_fetch() {
	if [ -d "$KAFKA_LIBS" ] && kafka_verify_jars "$KAFKA_LIBS" 2>/dev/null; then
		return 0
	fi
	log "kafka: fetching jars from Maven Central into $(rel "$KAFKA_LIBS")"
	local tmp="$CACHE/kafka/libs.tmp.$$"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	if ! kafka_mvn_copy "$tmp"; then
		rm -rf "$tmp"
		die "kafka: mvn dependency:copy-dependencies failed; full log in $(rel "$CACHE")/kafka/mvn.log"
	fi
	if ! kafka_verify_jars "$tmp"; then
		rm -rf "$tmp"
		die "kafka: refusing the fetched jars: they differ from the checksums pinned in $(rel "$KAFKA_SUMS") (after a deliberate change of scripts/kafka/pom.xml, run scripts/kafka/pin.sh)"
	fi
	rm -rf "$KAFKA_LIBS"
	mv "$tmp" "$KAFKA_LIBS"
}

# kafka_install installs what is missing and sets KAFKA_JAVA, the java
# command line (without the main class) that runs the broker and its tools.
kafka_install() {
	if ! kafka_find_java; then
		apt_install openjdk-17-jre-headless
		kafka_find_java || die "kafka: no java 17 or newer even after installing openjdk-17-jre-headless"
	fi
	KAFKA_JAVA=("$KAFKA_JAVA_BIN" -Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
		-Djava.awt.headless=true -Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.properties"
		-cp "$KAFKA_LIBS/*")
	kafka_fetch
	command -v go >/dev/null 2>&1 || die "kafka: go is needed to build scripts/kafkaready"
	mkdir -p "$CACHE/bin"
	(cd "$REPO" && go build -o "$KAFKAREADY" ./scripts/kafkaready) || die "kafka: cannot build scripts/kafkaready"
}

# kafka_pid prints the pid of our broker: the one in our pid file, when that
# process runs kafka.Kafka on our config. Nothing else counts as ours.
kafka_pid() {
	local pid
	pid=$(pid_from_file "$KAFKA_PIDFILE") && proc_has "$pid" "$KAFKA_CONFIG" || return 1
	echo "$pid"
}

# kafka_metadata [TIMEOUT] succeeds when the broker answers metadata.
kafka_metadata() {
	"$KAFKAREADY" -q -brokers "$KAFKA_BROKERS" -timeout "${1:-5s}"
}

# kafka_ready [TIMEOUT] succeeds when the broker answers metadata and a
# consumer group can be joined and can commit (kafkaready -smoke: topic
# created, one record produced and consumed in a group, offset committed,
# topic and group deleted). Metadata alone is not enough: right after a
# (re)start the group coordinator may not answer yet, and a test's first
# group join then fails or stalls.
kafka_ready() {
	"$KAFKAREADY" -q -smoke -brokers "$KAFKA_BROKERS" -timeout "${1:-60s}"
}

kafka_start() {
	kafka_install
	local pid
	if pid=$(kafka_pid); then
		log "kafka: already running (pid $pid)"
		_kafka_wait "$pid"
		return 0
	fi
	if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
		kafka_metadata 10s \
			|| die "kafka: $KAFKA_BROKERS is taken by a process that does not answer Kafka metadata and was not started by these scripts"
		kafka_ready 60s || die "kafka: $KAFKA_BROKERS, a broker these scripts did not start, does not let a consumer group join and commit"
		foreign kafka "$KAFKA_BROKERS"
		return 0
	fi
	port_open "$KAFKA_HOST" "$KAFKA_CONTROLLER_PORT" \
		&& die "kafka: controller port $KAFKA_HOST:$KAFKA_CONTROLLER_PORT is taken by a process not started by these scripts (set SWITCHYARD_KAFKA_CONTROLLER_PORT)"
	mkdir -p "$KAFKA_DATA"
	# SWITCHYARD_KAFKA_EXTRA_PROPERTIES (lines of key=value, same
	# placeholders) is appended: a later key overrides the template's, so
	# a test can add a listener (SASL) to a private broker.
	{ cat "$KAFKA_SRC/server.properties"; printf '%s\n' "${SWITCHYARD_KAFKA_EXTRA_PROPERTIES:-}"; } |
		sed -e "s#@DATA_DIR@#$KAFKA_DATA#" -e "s#@HOST@#$KAFKA_HOST#g" \
			-e "s#@PORT@#$KAFKA_PORT#g" -e "s#@CONTROLLER_PORT@#$KAFKA_CONTROLLER_PORT#g" >"$KAFKA_CONFIG"
	if [ ! -f "$KAFKA_DATA/meta.properties" ]; then
		log "kafka: formatting storage in $(rel "$KAFKA_DATA")"
		"${KAFKA_JAVA[@]}" -Dswitchyard.kafka.loglevel=warn kafka.tools.StorageTool format \
			-t "$KAFKA_CLUSTER_ID" -c "$KAFKA_CONFIG" >"$KAFKA_STATE/format.log" 2>&1 \
			|| { cat "$KAFKA_STATE/format.log" >&2; die "kafka: storage format failed"; }
	fi
	[ -f "$KAFKA_LOG" ] && mv -f "$KAFKA_LOG" "$KAFKA_LOG.1"
	log "kafka: starting on $KAFKA_BROKERS (controller :$KAFKA_CONTROLLER_PORT) from $(rel "$KAFKA_STATE")"
	daemon "$KAFKA_LOG" "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_CONFIG"
	pid=$DAEMON_PID
	echo "$pid" >"$KAFKA_PIDFILE"
	_kafka_wait "$pid"
}

# _kafka_wait PID waits until our broker is ready (kafka_ready), failing
# fast when the process dies.
_kafka_wait() {
	local pid=$1 deadline=$((SECONDS + 180))
	until kafka_metadata 3s 2>/dev/null; do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 30 "$KAFKA_LOG" >&2
			rm -f "$KAFKA_PIDFILE"
			die "kafka: broker exited during startup; see $(rel "$KAFKA_LOG")"
		fi
		[ "$SECONDS" -lt "$deadline" ] || die "kafka: $KAFKA_BROKERS does not answer metadata after 180s; see $(rel "$KAFKA_LOG")"
		sleep 0.5
	done
	kafka_ready 90s || die "kafka: $KAFKA_BROKERS answers metadata but a consumer group cannot join and commit within 90s; see $(rel "$KAFKA_LOG")"
}

kafka_stop() {
	local pid
	if ! pid=$(kafka_pid); then
		rm -f "$KAFKA_PIDFILE"
		if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
			log "kafka: $KAFKA_BROKERS is served by a broker these scripts did not start; leaving it running"
		else
			log "kafka: not running"
		fi
		return 0
	fi
	log "kafka: stopping (pid $pid)"
	stop_pid kafka "$pid"
	rm -f "$KAFKA_PIDFILE"
}

# kafka_restart stops our broker and starts it again on the same data
# directory, so topics and offsets survive: fault tests bounce the broker
# mid-stream. It refuses a broker we did not start; with nothing running it
# is kafka_start.
kafka_restart() {
	if ! kafka_pid >/dev/null && port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
		refuse_restart kafka "$KAFKA_BROKERS"
	fi
	kafka_stop
	kafka_start
}

kafka_status() {
	local pid
	if pid=$(kafka_pid); then
		if [ -x "$KAFKAREADY" ] && kafka_metadata 5s 2>/dev/null; then
			echo "kafka: running (pid $pid), $KAFKA_BROKERS, state in $(rel "$KAFKA_STATE")"
		else
			echo "kafka: pid $pid runs but $KAFKA_BROKERS does not answer metadata; see $(rel "$KAFKA_LOG")"
			return 1
		fi
	elif port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
		echo "kafka: $KAFKA_BROKERS accepts connections, not started by these scripts"
	else
		echo "kafka: stopped"
		return 3
	fi
}

kafka_where() {
	local v who
	v=$(find "$KAFKA_LIBS" -name 'kafka_2.13-*.jar' -printf '%f\n' 2>/dev/null | sed 's/kafka_2.13-//; s/\.jar$//')
	who="KRaft broker+controller ${v:-?}, controller :$KAFKA_CONTROLLER_PORT, log $(rel "$KAFKA_LOG")"
	kafka_pid >/dev/null || who="not started by these scripts"
	echo "kafka     $KAFKA_HOST:$KAFKA_PORT  $who"
}
