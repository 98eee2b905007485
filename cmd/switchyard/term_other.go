//go:build !linux

package main

import "os"

// isTerminal reports whether f is a character device, the best guess for an
// interactive terminal without a termios call on this platform.
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	st, err := file.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0 && file.Name() != os.DevNull
}
