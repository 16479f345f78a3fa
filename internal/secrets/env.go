package secrets

import "strings"

// ChildEnv returns env for the command: each secret's variables hold its
// placeholder, and any other variable holding a real value holds the
// placeholder in its place, so that no real value reaches the command.
func (s *Set) ChildEnv(env []string) []string {
	out := make([]string, 0, len(env))
	set := map[string]string{}
	for _, sec := range s.Secrets() {
		for _, v := range sec.Vars {
			set[v] = sec.placeholder
		}
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; ok {
			continue
		}
		out = append(out, k+"="+s.ScrubString(v))
	}
	for _, sec := range s.Secrets() {
		for _, v := range sec.Vars {
			if p, ok := set[v]; ok {
				out = append(out, v+"="+p)
				delete(set, v)
			}
		}
	}
	return out
}

// ChildArgs returns args with every real value replaced by its
// placeholder (a shell expanded $GH_TOKEN before regate saw it).
func (s *Set) ChildArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = s.ScrubString(a)
	}
	return out
}
