package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress is a one-line bar on a terminal, redrawn with "\r" at most ten
// times a second. It writes nothing when disabled.
type progress struct {
	w       io.Writer
	on      bool
	verb    string
	total   int
	n       int
	drawn   time.Time
	started bool
}

func newProgress(w io.Writer, on bool, verb string, total int) *progress {
	return &progress{w: w, on: on, verb: verb, total: total}
}

func (p *progress) set(n int) {
	p.n = n
	if !p.on || time.Since(p.drawn) < 100*time.Millisecond && n != p.total {
		return
	}
	p.draw()
}

func (p *progress) draw() {
	p.drawn, p.started = time.Now(), true
	if p.total <= 0 {
		fmt.Fprintf(p.w, "\r%s %d", p.verb, p.n)
		return
	}
	const width = 30
	filled := min(width, p.n*width/p.total)
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d %s", strings.Repeat("#", filled), strings.Repeat(".", width-filled), p.n, p.total, p.verb)
}

func (p *progress) done() {
	if p.on && p.started {
		p.draw()
		fmt.Fprintln(p.w)
	}
}
