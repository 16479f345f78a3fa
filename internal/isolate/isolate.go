// Package isolate puts the command of `regate run --isolate` in its own
// namespaces, so that the proxy is the only way out of it: Linux only, and
// for now no more than the check whether that is possible here.
package isolate
