# shellcheck shell=bash
# Single-node KRaft Kafka broker from the Maven Central jars, run on the
# installed Java 17. Source scripts/lib/common.sh first.
#
# Files: scripts/kafka/pom.xml (which jars), scripts/kafka/server.properties
# (config template), scripts/kafka/log4j2.properties (logging); the jars go to
# .cache/kafka/libs, state to .work/kafka (data/, server.log, kafka.pid).

KAFKA_SRC="$REPO/scripts/kafka"
KAFKA_LIBS="$CACHE/kafka/libs"
KAFKA_STATE="$WORK/kafka"
KAFKA_DATA="$KAFKA_STATE/data"
KAFKA_PIDFILE="$KAFKA_STATE/kafka.pid"
KAFKA_LOG="$KAFKA_STATE/server.log"
KAFKA_CONFIG="$KAFKA_STATE/server.properties"
KAFKAREADY="$CACHE/bin/kafkaready"
# A fixed cluster id ("switchyard-test1" in base64url) keeps formatting reproducible.
KAFKA_CLUSTER_ID=c3dpdGNoeWFyZC10ZXN0MQ
KAFKA_HEAP=${KAFKA_HEAP:-512m}

KAFKA_JAVA=(java -Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
	-Djava.awt.headless=true -Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.properties"
	-cp "$KAFKA_LIBS/*")

# kafka_fetch copies kafka_2.13 and its runtime dependencies into
# .cache/kafka/libs with Maven, unless the jars for the current pom.xml are there.
kafka_fetch() {
	local stamp
	stamp=$(sha256sum "$KAFKA_SRC/pom.xml" | cut -d' ' -f1)
	if [ -f "$KAFKA_LIBS/.pom.sha256" ] && [ "$(cat "$KAFKA_LIBS/.pom.sha256")" = "$stamp" ]; then
		return 0
	fi
	command -v mvn >/dev/null 2>&1 || apt_install maven
	log "kafka: fetching jars from Maven Central into ${KAFKA_LIBS#"$REPO"/}"
	local tmp="$CACHE/kafka/libs.tmp.$$"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	if ! mvn -B -q -Dstyle.color=never -f "$KAFKA_SRC/pom.xml" dependency:copy-dependencies \
		-Dlibs.dir="$tmp" >"$CACHE/kafka/mvn.log" 2>&1; then
		tail -n 30 "$CACHE/kafka/mvn.log" >&2
		rm -rf "$tmp"
		die "kafka: mvn dependency:copy-dependencies failed; full log in ${CACHE#"$REPO"/}/kafka/mvn.log"
	fi
	echo "$stamp" >"$tmp/.pom.sha256"
	rm -rf "$KAFKA_LIBS"
	mv "$tmp" "$KAFKA_LIBS"
}

kafka_install() {
	command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless
	kafka_fetch
	command -v go >/dev/null 2>&1 || die "kafka: go is needed to build scripts/kafkaready"
	mkdir -p "$CACHE/bin"
	(cd "$REPO" && go build -o "$KAFKAREADY" ./scripts/kafkaready) || die "kafka: cannot build scripts/kafkaready"
}

# kafka_pid prints the broker's pid when the process in the pid file is our broker.
kafka_pid() {
	local pid
	[ -f "$KAFKA_PIDFILE" ] || return 1
	pid=$(cat "$KAFKA_PIDFILE")
	[ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "kafka.Kafka $KAFKA_CONFIG" || return 1
	echo "$pid"
}

kafka_ready() {
	"$KAFKAREADY" -q -brokers "$KAFKA_BROKERS" -timeout "${1:-5s}"
}

kafka_start() {
	kafka_install
	local pid
	if pid=$(kafka_pid); then
		log "kafka: already running (pid $pid)"
		kafka_ready 60s || die "kafka: pid $pid runs but $KAFKA_BROKERS does not answer metadata; see ${KAFKA_LOG#"$REPO"/}"
		return 0
	fi
	if port_open "$KAFKA_HOST" "$KAFKA_PORT" || port_open "$KAFKA_HOST" "$KAFKA_CONTROLLER_PORT"; then
		die "kafka: $KAFKA_HOST:$KAFKA_PORT or :$KAFKA_CONTROLLER_PORT is taken by a process not started by scripts/kafka.sh"
	fi
	mkdir -p "$KAFKA_DATA"
	sed "s#@DATA_DIR@#$KAFKA_DATA#" "$KAFKA_SRC/server.properties" >"$KAFKA_CONFIG"
	if [ ! -f "$KAFKA_DATA/meta.properties" ]; then
		log "kafka: formatting storage in ${KAFKA_DATA#"$REPO"/}"
		"${KAFKA_JAVA[@]}" -Dswitchyard.kafka.loglevel=warn kafka.tools.StorageTool format \
			-t "$KAFKA_CLUSTER_ID" -c "$KAFKA_CONFIG" >"$KAFKA_STATE/format.log" 2>&1 \
			|| { cat "$KAFKA_STATE/format.log" >&2; die "kafka: storage format failed"; }
	fi
	[ -f "$KAFKA_LOG" ] && mv -f "$KAFKA_LOG" "$KAFKA_LOG.1"
	log "kafka: starting"
	# setsid: the broker outlives the shell (and process group) that started it.
	setsid nohup "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_CONFIG" </dev/null >"$KAFKA_LOG" 2>&1 &
	pid=$!
	echo "$pid" >"$KAFKA_PIDFILE"
	local deadline=$((SECONDS + 120))
	until kafka_ready 3s 2>/dev/null; do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 30 "$KAFKA_LOG" >&2
			rm -f "$KAFKA_PIDFILE"
			die "kafka: broker exited during startup; see ${KAFKA_LOG#"$REPO"/}"
		fi
		[ "$SECONDS" -lt "$deadline" ] || die "kafka: $KAFKA_BROKERS does not answer metadata after 120s; see ${KAFKA_LOG#"$REPO"/}"
		sleep 0.5
	done
	kafka_pid >/dev/null || die "kafka: pid $pid in ${KAFKA_PIDFILE#"$REPO"/} is not the broker"
}

kafka_stop() {
	local pid
	if ! pid=$(kafka_pid); then
		log "kafka: not running"
		rm -f "$KAFKA_PIDFILE"
		return 0
	fi
	log "kafka: stopping (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	if ! wait_until 60 "kafka stop" eval "! kill -0 $pid"; then
		log "kafka: pid $pid ignored SIGTERM for 60s, killing it"
		kill -KILL "$pid" 2>/dev/null || true
		wait_until 10 "kafka kill" eval "! kill -0 $pid" || die "kafka: pid $pid survives SIGKILL"
	fi
	rm -f "$KAFKA_PIDFILE"
}

kafka_status() {
	local pid
	if pid=$(kafka_pid) && [ -x "$KAFKAREADY" ] && kafka_ready 5s 2>/dev/null; then
		echo "kafka: running (pid $pid), $KAFKA_BROKERS"
	else
		echo "kafka: stopped"
		return 3
	fi
}

kafka_where() {
	local v
	v=$(find "$KAFKA_LIBS" -name 'kafka_2.13-*.jar' -printf '%f\n' 2>/dev/null | sed 's/kafka_2.13-//; s/\.jar$//')
	echo "kafka     $KAFKA_HOST:$KAFKA_PORT  KRaft broker+controller ${v:-?}, controller :$KAFKA_CONTROLLER_PORT, log ${KAFKA_LOG#"$REPO"/}"
}
