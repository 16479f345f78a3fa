package config

import (
	"fmt"

	"github.com/go-viper/mapstructure/v2"

	"github.com/regate/regate/internal/secrets"
)

// secrets decodes the secrets: list strictly (unknown keys are errors),
// completes each entry with its preset and validates it.
func (p *problems) secrets(v any) []secrets.Spec {
	if v == nil {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		p.add("secrets: must be a list of objects, not %s", typeName(v))
		return nil
	}
	var out []secrets.Spec
	for i, item := range list {
		var s secrets.Spec
		dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{ErrorUnused: true, Result: &s})
		if err == nil {
			err = dec.Decode(item)
		}
		if err != nil {
			p.add("secrets[%d]: %w", i, err)
			continue
		}
		s = secrets.WithPreset(s)
		if err := s.Validate(fmt.Sprintf("secrets[%d]", i)); err != nil {
			p.add("%w", err)
			continue
		}
		out = append(out, s)
	}
	return out
}
