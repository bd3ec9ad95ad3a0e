package etcdtest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/nimbus-sdn/nimbus/store"
)

// Embedded opens a store on its own embedded etcd (a private data dir and
// free loopback ports), closed in t.Cleanup.
func Embedded(t testing.TB) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), store.Config{DataDir: filepath.Join(t.TempDir(), "etcd"),
		EmbedClientURL: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), EmbedPeerURL: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
