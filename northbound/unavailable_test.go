package northbound

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nimbus-sdn/nimbus/store"
)

// The 503 answer follows store.IsUnavailable, the one definition: an
// etcd gRPC code or store.ErrUnavailable is a 503; an error whose text
// merely mentions a connection or transport is an internal error.
func TestAPIErrorUnavailableFromStore(t *testing.T) {
	h := &handler{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, c := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("x: %w", store.ErrUnavailable), http.StatusServiceUnavailable},
		{status.Error(codes.Unavailable, "etcd gone"), http.StatusServiceUnavailable},
		{errors.New("connection pool full"), http.StatusInternalServerError},
		{errors.New("transport: bad frame"), http.StatusInternalServerError},
		{store.ErrConflict, http.StatusInternalServerError},
	} {
		if got := h.toAPIError(c.err).status; got != c.want {
			t.Errorf("%v: status %d, want %d", c.err, got, c.want)
		}
	}
}
