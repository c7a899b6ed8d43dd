package chstore

import (
	"errors"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// WithHint adds what to do to a ClickHouse error that has a known remedy:
// a database or table that does not exist (the schema was not migrated, or
// RTB_CLICKHOUSE_DATABASE names another database).
func WithHint(err error) error {
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) {
		return err
	}
	switch ex.Code {
	case 81: // UNKNOWN_DATABASE
		return fmt.Errorf("%w (create it with starter migrate, or check RTB_CLICKHOUSE_DATABASE)", err)
	case 60: // UNKNOWN_TABLE
		return fmt.Errorf("%w (the schema is missing or older than this release: starter migrate; or check RTB_CLICKHOUSE_DATABASE)", err)
	}
	return err
}
