package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

// --connect-wait 0 means one try, not a wait without end: the backoff
// library reads a zero maximum as "never stop".
func TestConnectWaitZeroTriesOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	calls := 0
	down := errors.New("connection refused")
	_, err := waitFor(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), "ClickHouse", 0, func() (int, error) {
		calls++
		return 0, down
	})
	if !errors.Is(err, down) || calls != 1 {
		t.Fatalf("waitFor within 0: %d tries, error %v; want one try and its error", calls, err)
	}
}
