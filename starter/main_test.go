package main

import (
	"bytes"
	"strings"
	"testing"
)

// A mistyped subcommand of a command group is an error (exit 1), as a
// mistyped command is: a deploy script's `starter schedule crate` must not
// succeed having done nothing. The group alone still prints its help.
func TestMistypedSubcommandIsAnError(t *testing.T) {
	for _, args := range [][]string{{"schedule", "creat"}, {"topic", "adpot"}, {"completion", "bsh"}, {"statsu"}} {
		root := newRoot()
		var out bytes.Buffer
		root.SetArgs(args)
		root.SetOut(&out)
		root.SetErr(&out)
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), `unknown command "`+args[len(args)-1]+`"`) {
			t.Errorf("starter %s: %v, want unknown command\n%s", strings.Join(args, " "), err, out.String())
		}
	}
	root := newRoot()
	var out bytes.Buffer
	root.SetArgs([]string{"schedule"})
	root.SetOut(&out)
	if err := root.Execute(); err != nil || !strings.Contains(out.String(), "Available Commands") {
		t.Errorf("starter schedule: %v, want its help\n%s", err, out.String())
	}
}
