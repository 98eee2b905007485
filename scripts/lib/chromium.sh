# shellcheck shell=bash
# Chromium for the dashboard's browser tests (pkg/admin, through
# internal/browsertest): Debian's chromium package, driven headless by
# go test. Not a server: nothing to start or stop. Source after common.sh.

CHROMIUM_BIN=${SWITCHYARD_TEST_CHROMIUM:-/usr/bin/chromium}

# chromium_install installs Debian's chromium when it is missing. Without
# root it only says so: the browser tests then skip (and fail under CI).
chromium_install() {
	if [ -x "$CHROMIUM_BIN" ]; then
		return 0
	fi
	if [ "$(id -u)" != 0 ]; then
		log "chromium: $CHROMIUM_BIN missing and not root: the dashboard's browser tests will skip (apt-get install chromium as root)"
		return 0
	fi
	apt_install chromium
	[ -x "$CHROMIUM_BIN" ] || die "chromium: installed, but $CHROMIUM_BIN is missing"
}
