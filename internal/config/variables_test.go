package config

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Variables lists exactly the RTB_* variables the repository's code,
// scripts and documents name: a new one must be added to it (or every user
// who sets it is told it is unknown), and a removed one taken out.
func TestVariablesListed(t *testing.T) {
	root := filepath.Join("..", "..")
	name := regexp.MustCompile(`RTB_[A-Z0-9_]*[A-Z0-9]`)
	prefixes := []string{"RTB_KAFKA", "RTB_CLICKHOUSE", "RTB_TEMPORAL"} // tlsFromEnv's and secretSource's prefixes
	found := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n != "." && n != ".." && strings.HasPrefix(n, ".") && n != ".ci" || n == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".go", ".sh", ".md", ".yml", ".yaml", ".xml", ".json", "":
		default:
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "misspelt on purpose") {
				continue
			}
			for _, m := range name.FindAllString(line, -1) {
				if !slices.Contains(prefixes, m) {
					found[m] = path
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	known := Variables()
	for v, path := range found {
		if !slices.Contains(known, v) {
			t.Errorf("%s (named in %s) is not in Variables()", v, path)
		}
	}
	for _, v := range known {
		if _, ok := found[v]; !ok {
			t.Errorf("Variables() lists %s, which nothing in the repository names", v)
		}
	}
}

// A misspelt variable is named, with the setting it likely meant; known
// variables and others' are not.
func TestUnknownVariables(t *testing.T) {
	got := UnknownVariables([]string{"RTB_TEMPORAL_ADDR=x:1", "RTB_KAFKA_BROKERS=k:1", "PATH=/bin", "RTB_CLICKHOUSE_ADRR=c:1", // misspelt on purpose
		"RTB_SOMETHING_ELSE_ENTIRELY=1", "XRTB_TEMPORAL_ADDR=1"}) // misspelt on purpose
	want := []string{
		"RTB_CLICKHOUSE_ADRR is set, but rtbpipe reads no variable of that name: did you mean RTB_CLICKHOUSE_ADDR?", // misspelt on purpose
		"RTB_SOMETHING_ELSE_ENTIRELY is set, but rtbpipe reads no variable of that name",                            // misspelt on purpose
		"RTB_TEMPORAL_ADDR is set, but rtbpipe reads no variable of that name: did you mean RTB_TEMPORAL_ADDRESS?",  // misspelt on purpose
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
