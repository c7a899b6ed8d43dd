// Package sql holds rtbpipe's ClickHouse schema as ordered, idempotent
// migrations (NNN_name.sql), applied in order by `starter migrate`.
package sql

import (
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
)

//go:embed *.sql
var files embed.FS

// Migration is one schema step.
type Migration struct {
	Version    int
	Name       string
	Statements []string // with {db} already replaced
}

// Migrations returns the schema steps for database db, in order.
func Migrations(db string) ([]Migration, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	slices.Sort(names)
	var out []Migration
	for _, name := range names {
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number and '_'", name)
		}
		b, err := files.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		out = append(out, Migration{Version: v, Name: strings.TrimSuffix(name, ".sql"),
			Statements: Split(strings.ReplaceAll(string(b), "{db}", db))})
	}
	return out, nil
}

// For returns the migration's statements for a single server (cluster "")
// or for the ClickHouse cluster named cluster (cluster.go).
func (m Migration) For(cluster string) ([]Statement, error) {
	var out []Statement
	for i, st := range m.Statements {
		if cluster == "" {
			out = append(out, Statement{st, Connected})
			continue
		}
		cs, err := OnClusterStatements(st, cluster)
		if err != nil {
			return nil, fmt.Errorf("migration %s, statement %d: %w", m.Name, i+1, err)
		}
		out = append(out, cs...)
	}
	return out, nil
}

// Split cuts a script into statements at semicolons that end a line,
// dropping comment lines and empty statements.
func Split(script string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(script, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			if s := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"); s != "" {
				out = append(out, s)
			}
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}
