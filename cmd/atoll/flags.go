package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// The one flag idiom of cmd/atoll: every flag is declared on the command's
// flag.FlagSet with its real type (StringVar, IntVar, DurationVar, BoolVar,
// TextVar, and the byteSize and secret values below); the command line is
// parsed; then applyEnv applies ATOLL_<NAME> with fs.Set to each flag the
// command line did not set, so an environment value is parsed and checked
// exactly as the flag, with the same error. Ranges the types do not express
// (positive sizes, caps) are checked last with checkPositive and checkRange,
// whose errors name the flag. Secret flags never show a value in the usage
// text.

// cliEnv carries the output streams of one command line.
type cliEnv struct {
	stdout, stderr io.Writer
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(env *cliEnv, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "Usage: atoll %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseInterspersed parses flags that may come before, between or after the
// positional arguments ("atoll deploy DIR --site x") and returns the
// positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// parseArgs parses args and checks that exactly n positional arguments,
// described by what, remain.
func parseArgs(fs *flag.FlagSet, args []string, n int, what string) ([]string, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != n {
		return nil, fmt.Errorf("%w: want %s, got %d argument(s)", errUsage, what, len(pos))
	}
	return pos, nil
}

// envName returns the environment variable that stands for flag name:
// ATOLL_ and the name in upper case, '-' as '_' (--raft-addr:
// ATOLL_RAFT_ADDR).
func envName(name string) string {
	return "ATOLL_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// envValue returns the value of flag name's environment variable. An empty
// variable counts as unset: ATOLL_CA= means no CA, as no --ca does.
func envValue(name string) (string, bool) {
	v := os.Getenv(envName(name))
	return v, v != ""
}

// applyEnv is the environment pass, run once the command line is parsed:
// each flag of names (every flag of fs when names is empty) that the
// command line did not set takes its environment variable (envName), if
// set, through fs.Set. An invalid value fails like the flag would, naming
// the variable too.
func applyEnv(fs *flag.FlagSet, names ...string) error {
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	if len(names) == 0 {
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	}
	for _, name := range names {
		v, ok := envValue(name)
		if !ok || onCommandLine[name] {
			continue
		}
		if err := fs.Set(name, v); err != nil {
			return fmt.Errorf("%w: invalid value %q for flag -%s (from %s): %v", errUsage, v, name, envName(name), err)
		}
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// secret is a string flag whose value the usage text never shows: String is
// always empty, so flag.PrintDefaults prints no default for it, whatever
// the field held when the flag was declared.
type secret string

func (s *secret) String() string     { return "" }
func (s *secret) Set(v string) error { *s = secret(v); return nil }

// byteSize is a size flag held in an int or int64 field: it reads a size
// as parseBytes does (1048576, 512MiB, 10GiB, 2GB) and prints one as
// formatBytes does.
type byteSize[T ~int | ~int64] struct{ p *T }

// sizeVar declares a size flag writing into p, whose value is the default.
func sizeVar[T ~int | ~int64](fs *flag.FlagSet, p *T, name, usage string) {
	fs.Var(byteSize[T]{p}, name, usage)
}

func (b byteSize[T]) String() string {
	if b.p == nil { // the zero Value flag.PrintDefaults makes
		return "0"
	}
	return formatBytes(int64(*b.p))
}

func (b byteSize[T]) Set(s string) error {
	n, err := parseBytes(s)
	if err != nil {
		return err
	}
	if int64(T(n)) != n {
		return fmt.Errorf("%s is too large", s)
	}
	*b.p = T(n)
	return nil
}

func (b byteSize[T]) Get() any { return int64(*b.p) }

// parseBytes reads a size such as 1048576, 512MiB, 10GiB or 2GB.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is not a size such as 512MiB or 10GiB", s)
	}
	return n * mult, nil
}

// formatBytes writes a size the way parseBytes reads it, in the largest
// binary unit that divides it.
func formatBytes(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// requireFlags returns a usage error unless every flag of names has a
// non-empty value, e.g. "--site and --domain are required". Not for secret
// flags: their String is always empty.
func requireFlags(fs *flag.FlagSet, names ...string) error {
	for _, name := range names {
		if fs.Lookup(name).Value.String() != "" {
			continue
		}
		list := make([]string, len(names))
		for i, n := range names {
			list[i] = "--" + n
		}
		if len(list) == 1 {
			return fmt.Errorf("%w: %s is required", errUsage, list[0])
		}
		last := len(list) - 1
		return fmt.Errorf("%w: %s and %s are required", errUsage, strings.Join(list[:last], ", "), list[last])
	}
	return nil
}

// checkPositive returns a one-line usage error naming the first of the
// numeric flags names whose value is not above zero, e.g.
// "--max-files 0: want a positive number".
func checkPositive(fs *flag.FlagSet, names ...string) error {
	for _, name := range names {
		n, kind := numberOf(fs.Lookup(name).Value)
		if err := checkRange(fs, name, n > 0, "a positive "+kind); err != nil {
			return err
		}
	}
	return nil
}

// checkRange returns a one-line usage error naming flag name when its
// value is not ok; want says what would be.
func checkRange(fs *flag.FlagSet, name string, ok bool, want string) error {
	if ok {
		return nil
	}
	return fmt.Errorf("%w: --%s %s: want %s", errUsage, name, fs.Lookup(name).Value, want)
}

// numberOf returns the value of a numeric flag, and what kind of number it
// is with an example, for messages.
func numberOf(v flag.Value) (int64, string) {
	switch x := v.(flag.Getter).Get().(type) {
	case time.Duration:
		return int64(x), "duration such as 30s"
	case uint64:
		return int64(min(x, math.MaxInt64)), "number"
	case int:
		return int64(x), "number"
	case int64: // byteSize
		return x, "size such as 64KiB"
	}
	panic(fmt.Sprintf("flag value %T is not a number", v))
}
