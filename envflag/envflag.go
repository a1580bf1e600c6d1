// Package envflag is a command line flag set whose flags fall back to
// HOOKD_* environment variables: --blob-url reads HOOKD_BLOB_URL when it is
// not given. The serve configuration and the CLI commands both parse their
// flags with it, so every command explains its variables the same way.
package envflag

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// FlagSet is a flag.FlagSet whose flags fall back to environment variables.
type FlagSet struct {
	*flag.FlagSet
	env    map[string]string // flag name -> variable
	short  map[string]string // long flag name -> its short form
	stderr io.Writer
	usage  string
}

// New returns a FlagSet named name that prints usage and then every flag
// with its variable and default on stderr for --help. A command line it
// cannot parse prints nothing: Parse returns the error, for the caller to
// report once.
func New(name string, stderr io.Writer, usage string) *FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// The flag package prints a parse error and the whole usage before it
	// returns the error; Parse prints the usage for --help only.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &FlagSet{FlagSet: fs, env: map[string]string{}, short: map[string]string{}, stderr: stderr, usage: usage}
}

// printUsage prints the usage, then every flag with its variable and
// default; a short form is shown beside its long flag.
func (f *FlagSet) printUsage() {
	fmt.Fprint(f.stderr, f.usage)
	fmt.Fprintln(f.stderr, "\nFlags (each also read from the environment variable shown):")
	shorts := map[string]bool{}
	for _, s := range f.short {
		shorts[s] = true
	}
	f.VisitAll(func(fl *flag.Flag) {
		if shorts[fl.Name] {
			return
		}
		def := ""
		if fl.DefValue != "" && fl.DefValue != "false" && fl.DefValue != "0" {
			def = " (default " + fl.DefValue + ")"
		}
		names := "--" + fl.Name
		if s, ok := f.short[fl.Name]; ok {
			names = "-" + s + ", " + names
		}
		fmt.Fprintf(f.stderr, "  %s  [%s]\n      %s%s\n", names, f.env[fl.Name], fl.Usage, def)
	})
}

// Name is the environment variable of flag name: HOOKD_ and the name in
// upper case with - as _.
func Name(flagName string) string {
	return "HOOKD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// String defines a string flag.
func (f *FlagSet) String(p *string, name, def, usage string) {
	f.env[name] = Name(name)
	f.StringVar(p, name, def, usage)
}

// Short defines name as a short form of the string flag long, read from
// long's variable.
func (f *FlagSet) Short(p *string, name, long string) {
	f.env[name] = Name(long)
	f.short[long] = name
	f.StringVar(p, name, "", "short for --"+long)
}

// Bool defines a boolean flag.
func (f *FlagSet) Bool(p *bool, name string, def bool, usage string) {
	f.env[name] = Name(name)
	f.BoolVar(p, name, def, usage)
}

// Int defines an integer flag.
func (f *FlagSet) Int(p *int, name string, def int, usage string) {
	f.env[name] = Name(name)
	f.IntVar(p, name, def, usage)
}

// Float defines a floating-point flag.
func (f *FlagSet) Float(p *float64, name string, def float64, usage string) {
	f.env[name] = Name(name)
	f.Float64Var(p, name, def, usage)
}

// Duration defines a duration flag.
func (f *FlagSet) Duration(p *time.Duration, name string, def time.Duration, usage string) {
	f.env[name] = Name(name)
	f.DurationVar(p, name, def, usage)
}

// parseArgs parses args as flag.FlagSet.Parse does and prints the usage
// for --help.
func (f *FlagSet) parseArgs(args []string) error {
	err := f.FlagSet.Parse(args)
	if IsHelp(err) {
		f.printUsage()
	}
	return err
}

// Parse parses the command line, then applies environment values to the
// flags it did not give. A bad flag or value is returned, not printed, for
// the caller to report once; all bad environment values are reported at
// once. --help prints the usage and returns an error for which IsHelp is
// true.
func (f *FlagSet) Parse(args []string, getenv func(string) string) error {
	if err := f.parseArgs(args); err != nil {
		return err
	}
	given := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	var errs []error
	f.VisitAll(func(fl *flag.Flag) {
		if given[fl.Name] {
			return
		}
		if v := getenv(f.env[fl.Name]); v != "" {
			if err := fl.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", f.env[fl.Name], v, err))
			}
		}
	})
	return errors.Join(errs...)
}

// ParseInterspersed is Parse for flags that may come before or after the
// positional arguments, which it returns.
func (f *FlagSet) ParseInterspersed(args []string, getenv func(string) string) ([]string, error) {
	var pos []string
	for {
		if err := f.parseArgs(args); err != nil {
			return nil, err
		}
		args = f.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	return pos, f.Parse(nil, getenv)
}

// IsHelp reports a --help request: the usage was printed.
func IsHelp(err error) bool { return errors.Is(err, flag.ErrHelp) }

// ErrUsage marks a command line that could not be parsed: hookd exits
// with status 2. An error that is ErrUsage itself means the problem was
// printed already.
var ErrUsage = errors.New("usage")
