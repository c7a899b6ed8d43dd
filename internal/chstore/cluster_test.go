package chstore

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// A server's going away leaves it out of the reads that ask every server;
// an answer, even an error, does not.
func TestUnreachable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("connect to ClickHouse at x: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), true},
		{fmt.Errorf("read: %w", io.EOF), true},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{&clickhouse.Exception{Code: 60, Message: "Table db.window_totals doesn't exist"}, false},
		{errors.New("some answer"), false},
	} {
		if got := unreachable(c.err); got != c.want {
			t.Errorf("unreachable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
