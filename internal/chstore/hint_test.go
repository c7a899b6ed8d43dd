package chstore

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// ClickHouse's errors that have a known remedy say it; others stay as
// they are.
func TestWithHint(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("read status: %w", &clickhouse.Exception{Code: 81, Message: "Database nosuchdb doesn't exist"}), "starter migrate"},
		{fmt.Errorf("read rates: %w", &clickhouse.Exception{Code: 60, Message: "Table rtb.rates_by_hour doesn't exist"}), "starter migrate"},
		{errors.New("connection refused"), ""},
		{&clickhouse.Exception{Code: 241, Message: "Memory limit exceeded"}, ""},
	} {
		got := WithHint(c.err)
		if !errors.Is(got, c.err) || c.want == "" && got.Error() != c.err.Error() || c.want != "" && !strings.Contains(got.Error(), c.want) {
			t.Errorf("WithHint(%v) = %v, want %q", c.err, got, c.want)
		}
	}
}
