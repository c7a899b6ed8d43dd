//go:build race

package batch

// raceEnabled: the race detector makes big aggregates slow to encode.
const raceEnabled = true
