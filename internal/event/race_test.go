//go:build race

package event

// raceBuild: the race detector slows the parser's property tests tenfold and
// finds nothing in them (the parser runs on one goroutine), so under it they
// check a sample; scripts/test.sh runs them in full without it.
const raceBuild = true
