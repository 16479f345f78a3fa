package isolate

import "errors"

// Available reports whether --isolate can work on this machine.
func Available() error {
	return errors.New("--isolate is not implemented in this version yet")
}
