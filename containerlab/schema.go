package containerlab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// SchemaEnv names the environment variable that points at containerlab's
// JSON schema, schemas/clab.schema.json in containerlab's repository. No
// package registry ships the schema, so the project does not guess where
// a copy lives: whoever has one says so.
const SchemaEnv = "D2D_CLAB_SCHEMA"

// ErrNoSchema is returned by SchemaFromEnv when SchemaEnv is unset.
var ErrNoSchema = errors.New("containerlab: no schema: set " + SchemaEnv + " to containerlab's schemas/clab.schema.json")

// SchemaFromEnv returns the path in $D2D_CLAB_SCHEMA: ErrNoSchema when it
// is unset, an error when it names no file.
func SchemaFromEnv() (string, error) {
	p := os.Getenv(SchemaEnv)
	if p == "" {
		return "", ErrNoSchema
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("containerlab: %s: %w", SchemaEnv, err)
	}
	return p, nil
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
