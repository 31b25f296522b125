package config

import (
	"bytes"
	"embed"
	"fmt"
	"slices"
	"text/template"
)

//go:embed templates
var templateFS embed.FS

var templates = template.Must(template.New("").Option("missingkey=error").ParseFS(templateFS, "templates/*"))

// Roles are the roles Template writes a file for.
var Roles = []string{"collector", "keeper", "tally"}

// TemplateValues are what a role's template is filled in with.
type TemplateValues struct {
	// Path is the file being written, as the operator will name it in
	// commands ("collector.yaml" when it goes to standard output).
	Path string
	// IdentityKey is the key file as the config names it, relative to the
	// config's directory or absolute; Fingerprint is that key's.
	IdentityKey, Fingerprint string
	// DataDir is the role's state directory.
	DataDir string
}

// Template returns a commented config file for role (one of Roles): every
// key explained, this node's key and fingerprint in place, the defaults of
// Debian's tor for a collector's source, and the values only the other
// operators can give left empty and marked FILL IN. A collector's file loads
// with LoadCollectorSource as written, so `privstats collect --check` works
// before anything is filled in; each role's full loader names what is
// still missing.
func Template(role string, v TemplateValues) ([]byte, error) {
	if !slices.Contains(Roles, role) {
		return nil, fmt.Errorf("config: no template for role %q (one of %v)", role, Roles)
	}
	var b bytes.Buffer
	data := struct {
		TemplateValues
		Role string
	}{v, role}
	if err := templates.ExecuteTemplate(&b, role+".yaml.tmpl", data); err != nil {
		return nil, fmt.Errorf("config: template %s: %w", role, err)
	}
	return b.Bytes(), nil
}
