// Package browsertest starts the headless Chromium that browser tests
// drive (through the DevTools protocol, with chromedp). The browser is
// Debian's chromium package, which scripts/up.sh installs; when it is
// missing the test is skipped, except under CI (CI=true), where it fails:
// CI must never pass by skipping, as with the brokers of package
// brokertest.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// EnvChromium names a Chromium binary other than the default.
const EnvChromium = "SWITCHYARD_TEST_CHROMIUM"

// DefaultChromium is where Debian's chromium package puts the browser.
const DefaultChromium = "/usr/bin/chromium"

// Chromium returns the browser binary for tests, or skips (fails under CI).
func Chromium(tb testing.TB) string {
	tb.Helper()
	path := os.Getenv(EnvChromium)
	if path == "" {
		path = DefaultChromium
	}
	if p, err := exec.LookPath(path); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		tb.Fatalf("Chromium is required under CI but %s is missing: run `make up` (scripts/up.sh installs Debian's chromium) or set %s", path, EnvChromium)
	}
	tb.Skipf("Chromium not installed at %s: run `make up` (scripts/up.sh installs it) or set %s (under CI=true this fails instead)", path, EnvChromium)
	return ""
}

// New starts a headless Chromium with a fresh profile of its own and
// returns a browser tab's context; every chromedp action runs under it.
// The browser is stopped, and waited for, when the test ends. timeout
// bounds the whole test's use of the browser.
func New(tb testing.TB, timeout time.Duration) context.Context {
	tb.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(Chromium(tb)),
		// A fresh profile: nothing from another run (storage, cache) leaks in.
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox, // tests run as root, where Chromium's sandbox cannot start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		// Nothing but the page under test touches the network.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1440, 900), // a laptop screen
	}
	ctx, cancelTimeout := context.WithTimeout(context.Background(), timeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithErrorf(tb.Logf))
	// Start the browser now, so a browser that cannot start fails here.
	if err := chromedp.Do(tabCtx); err != nil {
		cancelTab()
		cancelAlloc()
		cancelTimeout()
		tb.Fatalf("browsertest: start Chromium: %v", err)
	}
	tb.Cleanup(func() {
		cancelTab()
		cancelAlloc() // kills the browser and waits for it
		cancelTimeout()
	})
	return tabCtx
}
