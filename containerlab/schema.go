package containerlab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// SchemaPath is where the project keeps containerlab's JSON schema,
// relative to the directory that holds the repository: the shared/
// folder beside the clone.
const SchemaPath = "shared/containerlab/clab.schema.json"

// ErrNoSchema is returned by FindSchema when no copy of the schema is found.
var ErrNoSchema = errors.New("containerlab: schema not found")

// FindSchema looks for SchemaPath in dir and each of its ancestors and
// returns the first match. $D2D_CLAB_SCHEMA, when set, wins.
func FindSchema(dir string) (string, error) {
	if p := os.Getenv("D2D_CLAB_SCHEMA"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: D2D_CLAB_SCHEMA: %v", ErrNoSchema, err)
		}
		return p, nil
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("containerlab: %w", err)
	}
	for {
		p := filepath.Join(dir, SchemaPath)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%w: no %s in any parent directory (set D2D_CLAB_SCHEMA)", ErrNoSchema, SchemaPath)
		}
		dir = parent
	}
}

// Schema is containerlab's compiled JSON schema (draft-07).
type Schema struct {
	s *jsonschema.Schema
}

// LoadSchema compiles the schema file at path.
func LoadSchema(path string) (*Schema, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("containerlab: %w", err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		return nil, fmt.Errorf("containerlab: schema %s: %w", path, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	const url = "file:///clab.schema.json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("containerlab: schema %s: %w", path, err)
	}
	s, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("containerlab: schema %s: %w", path, err)
	}
	return &Schema{s: s}, nil
}

// Validate checks an expanded topology file (YAML) against the schema.
// Run Expand first: the schema knows nothing of ${VAR}.
func (s *Schema) Validate(expanded []byte) error {
	var v any
	if err := yaml.Unmarshal(expanded, &v); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	// YAML to JSON and back gives the validator JSON's own value types
	// (json.Number, map[string]any), whatever YAML's scalars decoded to.
	j, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%w: not representable as JSON: %v", ErrInvalid, err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := s.s.Validate(doc); err != nil {
		return fmt.Errorf("%w: schema: %v", ErrInvalid, err)
	}
	return nil
}

// ValidateFile expands, schema-validates and checks a topology file.
func (s *Schema) ValidateFile(path string, getenv func(string) string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("containerlab: %w", err)
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	exp := Expand(b, getenv)
	var errs []error
	if err := s.Validate(exp); err != nil {
		errs = append(errs, err)
	}
	if _, err := Parse(exp); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
