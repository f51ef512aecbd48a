package simulation

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

//go:embed scenarios/*.txt
var library embed.FS

// BuiltIn is one scenario of the built-in library.
type BuiltIn struct {
	Name string
	// Summary is the scenario's opening comment.
	Summary string
	Text    string
}

// Library returns the built-in scenarios, by name.
func Library() []BuiltIn {
	entries, err := fs.ReadDir(library, "scenarios")
	if err != nil {
		return nil // the embedded directory is always there
	}
	var out []BuiltIn
	for _, e := range entries {
		b, err := fs.ReadFile(library, path.Join("scenarios", e.Name()))
		if err != nil {
			continue
		}
		text := string(b)
		var summary []string
		for _, l := range strings.Split(text, "\n") {
			c, ok := strings.CutPrefix(l, "#")
			if !ok {
				break
			}
			summary = append(summary, strings.TrimSpace(c))
		}
		out = append(out, BuiltIn{Name: strings.TrimSuffix(e.Name(), ".txt"), Summary: strings.Join(summary, " "), Text: text})
	}
	slices.SortFunc(out, func(a, b BuiltIn) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// LookupBuiltIn parses the built-in scenario name with peers peers (0: its
// own count).
func LookupBuiltIn(name string, peers int) (*Scenario, error) {
	var names []string
	for _, b := range Library() {
		if b.Name == name {
			return Parse(name, b.Text, peers)
		}
		names = append(names, b.Name)
	}
	return nil, fmt.Errorf("simulation: no built-in scenario %q; the built-in ones are %s (or give a file)", name, strings.Join(names, ", "))
}
