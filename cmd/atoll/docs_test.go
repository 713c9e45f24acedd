package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// configDoc is the configuration reference every flag must appear in.
const configDoc = "../../docs/CONFIG.md"

// flagLine matches a flag as the flag package prints it in a usage
// message: two spaces, one dash, the name.
var flagLine = regexp.MustCompile(`(?m)^  -([A-Za-z0-9][A-Za-z0-9-]*)`)

// TestConfigDocumentsEveryFlag runs every subcommand that `atoll help`
// lists with -h, through Run as main does, and checks that each flag it
// prints appears in docs/CONFIG.md as --name.
func TestConfigDocumentsEveryFlag(t *testing.T) {
	doc, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	documented := string(doc)
	commands := helpCommands(t)
	missing := map[string][]string{} // flag -> commands that have it
	flags := 0
	for _, cmd := range commands {
		t.Run(strings.Join(cmd, " "), func(t *testing.T) {
			names := commandFlags(t, cmd)
			flags += len(names)
			for _, name := range names {
				if !strings.Contains(documented, "`--"+name+"`") {
					missing[name] = append(missing[name], strings.Join(cmd, " "))
				}
			}
		})
	}
	if flags == 0 {
		t.Fatal("no subcommand printed a flag: is the usage format the flag package's?")
	}
	names := make([]string, 0, len(missing))
	for name := range missing {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Errorf("--%s (%s) is not documented in docs/CONFIG.md", name, usedBy(missing[name]))
	}
}

// commandWord matches a word of a command's name, as opposed to an
// argument (ID, DIR), a flag or an option ([flags]).
var commandWord = regexp.MustCompile(`^[a-z]+(-[a-z]+)*$`)

// columnGap separates a synopsis from its description in `atoll help`.
var columnGap = regexp.MustCompile(`\s{2,}`)

// usedBy names the commands that have a flag, the first few in full.
func usedBy(cmds []string) string {
	const shown = 3
	if len(cmds) <= shown {
		return "atoll " + strings.Join(cmds, ", atoll ")
	}
	return fmt.Sprintf("atoll %s and %d more commands", strings.Join(cmds[:shown], ", atoll "), len(cmds)-shown)
}

// helpCommands returns the command lines `atoll help` lists ("server",
// "node join", ...): the words after "atoll" up to the first argument,
// flag or placeholder.
func helpCommands(t *testing.T) [][]string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := Run(context.Background(), []string{"help"}, &stdout, &stderr); err != nil {
		t.Fatalf("atoll help: %v", err)
	}
	var out [][]string
	for _, line := range strings.Split(stdout.String(), "\n") {
		if !strings.HasPrefix(line, "  atoll ") {
			continue
		}
		// "  atoll node list        list the cluster's nodes": the synopsis
		// ends where the description starts, after a run of spaces.
		synopsis := columnGap.Split(strings.TrimSpace(line), 2)[0]
		fields := strings.Fields(synopsis)
		var cmd []string
		for _, w := range fields[1:] {
			if !commandWord.MatchString(w) {
				break
			}
			cmd = append(cmd, w)
		}
		if len(cmd) > 0 && cmd[0] != "version" && cmd[0] != "help" {
			out = append(out, cmd)
		}
	}
	if len(out) < 10 {
		t.Fatalf("atoll help lists %d commands, want the whole set:\n%s", len(out), stdout.String())
	}
	return out
}

// commandFlags runs "atoll <cmd> -h" and returns the names of the flags its
// usage message prints.
func commandFlags(t *testing.T, cmd []string) []string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args := append(append([]string{}, cmd...), "-h")
	err := Run(context.Background(), args, &stdout, &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("atoll %s: got error %v, want flag.ErrHelp; stderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var names []string
	for _, m := range flagLine.FindAllStringSubmatch(stderr.String(), -1) {
		names = append(names, m[1])
	}
	if len(names) == 0 {
		t.Fatalf("atoll %s printed no flag:\n%s", strings.Join(args, " "), stderr.String())
	}
	return names
}
