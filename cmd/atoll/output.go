package main

import (
	"encoding/json"
	"flag"
	"fmt"
)

// outputFlag declares -o on a command that can print JSON for scripts.
func outputFlag(fs *flag.FlagSet) *string {
	return fs.String("o", "text", "output format: text, or json (the API's JSON, one document) for scripts")
}

// jsonOutput reports whether -o asks for JSON, refusing a format it does
// not know.
func jsonOutput(format string) (bool, error) {
	switch format {
	case "text":
		return false, nil
	case "json":
		return true, nil
	}
	return false, fmt.Errorf("%w: -o %q: use text or json", errUsage, format)
}

// printJSON writes v as indented JSON on stdout.
func printJSON(env *cliEnv, v any) error {
	enc := json.NewEncoder(env.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
