package main

import (
	"context"
	"fmt"
	"strings"
)

// subcommand is one command of a group such as `atoll site`: its word and
// the function that runs it with the arguments after the word.
type subcommand struct {
	name string
	run  func(ctx context.Context, env *cliEnv, args []string) error
}

// runGroup runs the subcommand of group that args[0] names with the rest of
// args; a missing or unknown word is a usage error listing the words.
func runGroup(ctx context.Context, env *cliEnv, group string, args []string, subs ...subcommand) error {
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s.name
	}
	if len(args) == 0 {
		return fmt.Errorf("%w: atoll %s %s", errUsage, group, strings.Join(names, "|"))
	}
	for _, s := range subs {
		if s.name == args[0] {
			return s.run(ctx, env, args[1:])
		}
	}
	return fmt.Errorf("%w: unknown %s command %q (%s)", errUsage, group, args[0], strings.Join(names, ", "))
}
