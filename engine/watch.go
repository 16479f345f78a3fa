package engine

import (
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watcher reloads when anything changes in the directories of the local
// sources. It watches directories, not files, so that editors that save by
// rename and Kubernetes ConfigMap `..data` symlink swaps are seen; it
// follows symlinked directories and debounces bursts of events.
type watcher struct {
	fs       *fsnotify.Watcher
	sources  []string
	debounce time.Duration
	log      *slog.Logger
	reload   func()
	mu       sync.Mutex
	watched  map[string]bool
	done     chan struct{}
	closed   sync.Once
}

func newWatcher(sources []string, debounce time.Duration, log *slog.Logger, reload func()) (*watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	w := &watcher{fs: fw, sources: sources, debounce: debounce, log: log, reload: reload,
		watched: map[string]bool{}, done: make(chan struct{})}
	w.rescan()
	go w.run()
	return w, nil
}

// rescan adds every directory of the sources to the watch: the parent of a
// file source, and a directory source with all its sub-directories
// (symlinks resolved).
func (w *watcher) rescan() {
	for _, src := range w.sources {
		info, err := os.Stat(src)
		if err != nil || !info.IsDir() {
			w.add(filepath.Dir(src))
			continue
		}
		w.add(src)
		w.walk(src, 0)
	}
}

func (w *watcher) walk(dir string, depth int) {
	if depth > 16 {
		return
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() || e.Type()&fs.ModeSymlink != 0 {
			if info, err := os.Stat(p); err == nil && info.IsDir() {
				w.add(p)
				w.walk(p, depth+1)
			}
		}
	}
}

func (w *watcher) add(dir string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.watched[dir] {
		return
	}
	if err := w.fs.Add(dir); err != nil {
		w.log.Warn("cannot watch policy directory", "dir", dir, "error", err)
		return
	}
	w.watched[dir] = true
}

func (w *watcher) run() {
	var timer *time.Timer
	fire := make(chan struct{}, 1)
	for {
		select {
		case <-w.done:
			if timer != nil {
				timer.Stop()
			}
			return
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			w.log.Debug("policy source changed", "path", ev.Name, "op", ev.Op.String())
			if timer != nil {
				timer.Stop()
			}
			timer = time.AfterFunc(w.debounce, func() {
				select {
				case fire <- struct{}{}:
				default:
				}
			})
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			w.log.Warn("watching policy sources", "error", err)
		case <-fire:
			w.rescan()
			w.reload()
		}
	}
}

func (w *watcher) close() {
	w.closed.Do(func() {
		close(w.done)
		_ = w.fs.Close()
	})
}
