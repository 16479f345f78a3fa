package engine

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// inputRendering is one way an Input leaves Go: what the policy evaluates
// and the two forms decision logs record.
type inputRendering struct {
	name   string
	render func(*Input) (any, error)
	// extra are keys it adds that are not fields of Input; skip are fields
	// it leaves out on purpose (by Go name, "Input.TLS.SNI"). Each with why.
	extra, skip map[string]string
}

var (
	policyInput = inputRendering{name: "AST (the policy's input)",
		render: func(in *Input) (any, error) { return ast.JSON(in.AST()) },
		extra:  map[string]string{"candidates": "computed from host and port by Candidates; callers cannot set it"}}
	// The logged forms leave input.candidates out (hundreds of strings for
	// an IPv6 host, and derived from host and port): no extra.
	loggedViaOPA = inputRendering{name: "LogAST (logged through OPA's plugin)",
		render: func(in *Input) (any, error) { return ast.JSON(in.LogAST()) }}
	loggedDirect = inputRendering{name: "logInput (logged straight from the struct)",
		render: func(in *Input) (any, error) { return logInput{in}, nil }}
	inputRenderings = []inputRendering{policyInput, loggedViaOPA, loggedDirect}
)

// renderInput is r's rendering of in as plain JSON values.
func renderInput(t *testing.T, r inputRendering, in *Input) map[string]any {
	t.Helper()
	v, err := r.render(in)
	must(t, err)
	var out map[string]any
	must(t, json.Unmarshal(mustJSON(t, v), &out))
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	return b
}

// jsonName is a field's name in the policy input: its json tag is the
// contract, so every field needs one.
func jsonName(t *testing.T, f reflect.StructField) string {
	t.Helper()
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" || name == "-" {
		t.Fatalf("field %s has no json tag to name it in the policy input", f.Name)
	}
	return name
}

// inputVariant is an Input with one field, or one field of its attempt,
// TLS or client object, changed from the zero value.
type inputVariant struct {
	field string   // Go name: Input.Attempt.Labels
	path  []string // JSON name: attempt, labels
	in    Input
	value any
}

// inputVariants walks Input by reflection; a field of a kind changeValue
// does not know fails the test.
func inputVariants(t *testing.T) []inputVariant {
	t.Helper()
	var out []inputVariant
	typ := reflect.TypeOf(Input{})
	for i := range typ.NumField() {
		f := typ.Field(i)
		v := inputVariant{field: "Input." + f.Name, path: []string{jsonName(t, f)}}
		fv := reflect.ValueOf(&v.in).Elem().Field(i)
		if !changeValue(fv) {
			t.Fatalf("Input.%s of kind %s: teach this test and Input.terms about it", f.Name, f.Type.Kind())
		}
		v.value = fv.Interface()
		out = append(out, v)
		if f.Type.Kind() != reflect.Pointer {
			continue
		}
		st := f.Type.Elem()
		for j := range st.NumField() {
			sf := st.Field(j)
			v := inputVariant{field: "Input." + f.Name + "." + sf.Name, path: []string{jsonName(t, f), jsonName(t, sf)}}
			elem := reflect.New(st)
			reflect.ValueOf(&v.in).Elem().Field(i).Set(elem)
			if !changeValue(elem.Elem().Field(j)) {
				t.Fatalf("%s of kind %s: teach this test and Input.terms about it", v.field, sf.Type.Kind())
			}
			v.value = elem.Elem().Field(j).Interface()
			out = append(out, v)
		}
	}
	return out
}

// TestInputRendersEveryField guards the hand-written renderings of Input
// against a field added later but not rendered: every field of Input, and of
// its attempt, TLS and client objects, set alone to a non-zero value, is in
// every rendering under its JSON name with its JSON value, unless that
// rendering's skip lists it with the reason.
func TestInputRendersEveryField(t *testing.T) {
	for _, v := range inputVariants(t) {
		var want any
		must(t, json.Unmarshal(mustJSON(t, v.value), &want))
		for _, r := range inputRenderings {
			if _, ok := r.skip[v.field]; ok {
				continue
			}
			var got any = renderInput(t, r, &v.in)
			for _, k := range v.path {
				obj, _ := got.(map[string]any)
				got = obj[k]
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: %s as %s = %#v, want %#v", r.name, v.field, strings.Join(v.path, "."), got, want)
			}
		}
	}
}

// TestInputRenderingsHoldOnlyFields: no rendering has a key that is
// neither a field of Input nor in its extra, and the two logged forms are
// the same JSON, so that a log reads the same whichever path an event took.
func TestInputRenderingsHoldOnlyFields(t *testing.T) {
	fields := map[string]bool{}
	typ := reflect.TypeOf(Input{})
	for i := range typ.NumField() {
		fields[jsonName(t, typ.Field(i))] = true
	}
	for _, v := range append(inputVariants(t), inputVariant{field: "zero Input"}) {
		for _, r := range inputRenderings {
			for k := range renderInput(t, r, &v.in) {
				if _, ok := r.extra[k]; !fields[k] && !ok {
					t.Errorf("%s of %s: key %q is no field of Input and not in extra", r.name, v.field, k)
				}
			}
		}
		// Marshalled maps have sorted keys.
		viaOPA, direct := mustJSON(t, renderInput(t, loggedViaOPA, &v.in)), mustJSON(t, renderInput(t, loggedDirect, &v.in))
		if string(viaOPA) != string(direct) {
			t.Errorf("%s logged through OPA's plugin:\n%s\nstraight from the struct:\n%s", v.field, viaOPA, direct)
		}
	}
}
