package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"
)

// InstanceIDFile is the file under OPA's persistence_directory that keeps
// this machine's instance id across restarts.
const InstanceIDFile = "regate-instance-id"

// instanceID is this process's labels.id: a fresh UUID, as OPA draws one per
// process, or, when OPA's persistence_directory is configured, the UUID kept
// there (created on first use), so that a control plane sees one machine as
// one instance across restarts.
func instanceID(opaRaw []byte) (string, error) {
	var cfg struct {
		Dir string `json:"persistence_directory"`
	}
	if err := json.Unmarshal(opaRaw, &cfg); err != nil {
		return "", fmt.Errorf("reading OPA configuration: %w", err)
	}
	if cfg.Dir == "" {
		return uuid.NewString(), nil
	}
	path := filepath.Join(cfg.Dir, InstanceIDFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(b))
		if _, err := uuid.Parse(id); err != nil {
			return "", fmt.Errorf("reading instance id %s: not a UUID: %w", path, err)
		}
		return id, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("reading instance id: %w", err)
	}
	id := uuid.NewString()
	if err := writeInstanceID(path, id); err != nil {
		return "", fmt.Errorf("keeping instance id: %w", err)
	}
	return id, nil
}

// writeInstanceID writes id to path atomically (temporary file, rename), so
// that a crash never leaves a half-written id behind.
func writeInstanceID(path, id string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".instance-id-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	if _, err := f.WriteString(id + "\n"); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
