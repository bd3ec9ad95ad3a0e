// Package store keeps the network model in etcd: typed records under one
// versioned key prefix, written through revision-guarded transactions and
// read by a mirror (read at a revision, then watch from the next one;
// read again after a compaction) that hands out immutable snapshots.
package store

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nimbus-sdn/nimbus/model"
)

// Embedded etcd compaction defaults: keep an hour of history.
const (
	DefaultAutoCompactionMode      = "periodic"
	DefaultAutoCompactionRetention = "1h"
)

// Prefix is the versioned root of every Nimbus key.
const Prefix = "/nimbus/v1/"

// Errors.
var (
	ErrNotFound = errors.New("store: not found")
	ErrExists   = errors.New("store: already exists")
	ErrConflict = errors.New("store: revision conflict")
	// ErrTooLarge: a transaction has more operations than etcd takes in
	// one (its --max-txn-ops; the embedded etcd takes MaxTxnOps).
	ErrTooLarge    = errors.New("store: transaction too large")
	ErrUnavailable = errors.New("store: etcd unavailable")
	ErrFenced      = errors.New("store: write fenced: this replica no longer holds the lease it wrote under")
)

// Config selects etcd.
type Config struct {
	// Endpoints of an etcd cluster. Empty: start an embedded one.
	Endpoints []string
	// DataDir of the embedded etcd.
	DataDir string
	// EmbedClientURL and EmbedPeerURL for the embedded etcd.
	EmbedClientURL string
	EmbedPeerURL   string
	// AutoCompactionMode ("periodic" or "revision") and
	// AutoCompactionRetention ("1h" / "30m" in periodic mode, a number of
	// revisions in revision mode) configure the embedded etcd's
	// compaction of old revisions. Empty: periodic, 1h. An external
	// cluster compacts by its own --auto-compaction-* flags.
	AutoCompactionMode      string
	AutoCompactionRetention string
	// TLS client certificates for an external cluster.
	CertFile, KeyFile, CAFile string
	// Username and Password authenticate to an etcd with auth enabled
	// (a client certificate's CN does too, without them).
	Username, Password string
	DialTimeout        time.Duration
	Logger             *slog.Logger
}

// Store is a handle on the model in etcd.
type Store struct {
	c      *clientv3.Client
	log    *slog.Logger
	etcd   *embed.Etcd
	embed  string // client URL of the embedded member
	prefix string
}

// Open connects to etcd, starting an embedded member when no endpoints
// are configured.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	s := &Store{log: cfg.Logger, prefix: Prefix}
	endpoints := cfg.Endpoints
	if len(endpoints) == 0 {
		e, ep, err := startEmbedded(cfg)
		if err != nil {
			return nil, err
		}
		s.etcd, s.embed = e, ep
		endpoints = []string{ep}
	}
	cc := clientv3.Config{Endpoints: endpoints, DialTimeout: cfg.DialTimeout, Logger: zap.NewNop(),
		Username: cfg.Username, Password: cfg.Password,
		// etcd servers refuse client pings more often than every 5 s
		// (GOAWAY too_many_pings, which also kills lease keepalives).
		DialKeepAliveTime: 10 * time.Second, DialKeepAliveTimeout: 3 * time.Second,
		// Reconnect within a second of etcd coming back, not after
		// gRPC's default backoff (up to two minutes).
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second})}}
	if cfg.CertFile != "" || cfg.CAFile != "" {
		tc, err := tlsConfig(cfg)
		if err != nil {
			s.Close()
			return nil, err
		}
		cc.TLS = tc
	}
	c, err := clientv3.New(cc)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("store: connecting to etcd %v: %w", endpoints, err)
	}
	s.c = c
	return s, nil
}

func tlsConfig(cfg Config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("store: etcd client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("store: etcd CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("store: no certificates in %s", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// MaxTxnOps is the embedded etcd's limit on operations in one
// transaction (an external etcd needs --max-txn-ops as large for bulk
// creates of more than a dozen items).
const MaxTxnOps = 16384

func startEmbedded(cfg Config) (*embed.Etcd, string, error) {
	ec := embed.NewConfig()
	ec.Name = "nimbus"
	ec.Dir = cfg.DataDir
	if ec.Dir == "" {
		ec.Dir = "var/etcd"
	}
	if err := os.MkdirAll(filepath.Dir(ec.Dir), 0o755); err != nil {
		return nil, "", fmt.Errorf("store: embedded etcd data dir: %w", err)
	}
	clientURL, peerURL := cfg.EmbedClientURL, cfg.EmbedPeerURL
	if clientURL == "" {
		clientURL = "http://127.0.0.1:12379"
	}
	if peerURL == "" {
		peerURL = "http://127.0.0.1:12380"
	}
	cu, err := url.Parse(clientURL)
	if err != nil {
		return nil, "", fmt.Errorf("store: embedded client url: %w", err)
	}
	pu, err := url.Parse(peerURL)
	if err != nil {
		return nil, "", fmt.Errorf("store: embedded peer url: %w", err)
	}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	ec.InitialCluster = ec.Name + "=" + pu.String()
	// Compact old revisions, or history grows until the space quota
	// refuses every write (defragmentation then returns the space: see
	// Maintain).
	ec.AutoCompactionMode, ec.AutoCompactionRetention = cfg.AutoCompactionMode, cfg.AutoCompactionRetention
	if ec.AutoCompactionMode == "" {
		ec.AutoCompactionMode = DefaultAutoCompactionMode
	}
	if ec.AutoCompactionRetention == "" {
		ec.AutoCompactionRetention = DefaultAutoCompactionRetention
	}
	// One API bulk create is one transaction (every item's reads and
	// writes); etcd's default of 128 operations would cap a bulk at a
	// dozen ports.
	ec.MaxTxnOps = MaxTxnOps
	ec.LogLevel = "error"
	ec.Logger = "zap"
	ec.LogOutputs = []string{"stderr"}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(quietCore{zapcore.NewCore(
		zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.Lock(os.Stderr), zapcore.ErrorLevel)}))
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, "", fmt.Errorf("store: starting embedded etcd in %s: %w", ec.Dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		return nil, "", errors.New("store: embedded etcd did not become ready in 30s")
	}
	return e, cu.String(), nil
}

// Client exposes the etcd client (cluster uses it for leases and elections).
func (s *Store) Client() *clientv3.Client { return s.c }

// Embedded reports whether this store runs its own etcd.
func (s *Store) Embedded() bool { return s.etcd != nil }

// Close closes the client and stops an embedded etcd.
func (s *Store) Close() error {
	if s.c != nil {
		s.c.Close()
	}
	if s.etcd != nil {
		s.etcd.Close()
	}
	return nil
}

// Key is the etcd key of a record.
func Key(k model.Kind, id string) string { return Prefix + "model/" + string(k) + "/" + id }

// KindPrefix is the key prefix of a kind.
func KindPrefix(k model.Kind) string { return Prefix + "model/" + string(k) + "/" }

// parseKey splits a model key into kind and id.
func parseKey(key string) (model.Kind, string, bool) {
	rest, ok := strings.CutPrefix(key, Prefix+"model/")
	if !ok {
		return "", "", false
	}
	k, id, ok := strings.Cut(rest, "/")
	return model.Kind(k), id, ok
}

func decode(k model.Kind, v []byte) (model.Record, error) {
	r := model.New(k)
	if r == nil {
		return nil, fmt.Errorf("store: unknown kind %q", k)
	}
	if err := json.Unmarshal(v, r); err != nil {
		return nil, fmt.Errorf("store: decoding %s: %w", k, err)
	}
	return r, nil
}

// IsUnavailable is the one definition of "etcd is unavailable": an
// error already marked ErrUnavailable, or an etcd client failure whose
// gRPC status code (never its message text) says etcd cannot be reached
// now (unavailable, deadline exceeded, cancelled, no leader), or a
// context deadline or cancellation. Callers (northbound's 503 answer)
// ask this, not the error text.
func IsUnavailable(err error) bool {
	return err != nil && (errors.Is(err, ErrUnavailable) || isUnavailable(err))
}

// unavailable maps etcd connectivity failures (see IsUnavailable) to
// ErrUnavailable; other errors pass through.
func unavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || !isUnavailable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func isUnavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	code := codes.OK
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	} else if st, ok := status.FromError(err); ok {
		code = st.Code()
	}
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return true
	}
	return false
}

// Get reads one record and its modification revision.
func (s *Store) Get(ctx context.Context, k model.Kind, id string) (model.Record, int64, error) {
	resp, err := s.c.Get(ctx, Key(k, id))
	if err != nil {
		return nil, 0, unavailable(err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, fmt.Errorf("%w: %s %s", ErrNotFound, k, id)
	}
	r, err := decode(k, resp.Kvs[0].Value)
	return r, resp.Kvs[0].ModRevision, err
}

// Create writes a new record; it fails with ErrExists if the id is taken.
func (s *Store) Create(ctx context.Context, r model.Record, guards ...Guard) (int64, error) {
	v, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("store: encoding %s: %w", r.Kind(), err)
	}
	key := Key(r.Kind(), r.Key())
	resp, err := s.c.Txn(ctx).If(append([]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}, cmps(guards)...)...).
		Then(clientv3.OpPut(key, string(v))).Commit()
	if err != nil {
		return 0, unavailable(err)
	}
	if !resp.Succeeded {
		return 0, s.why(ctx, key, fmt.Errorf("%w: %s %s", ErrExists, r.Kind(), r.Key()), guards)
	}
	return resp.Header.Revision, nil
}

// Update replaces a record only if it is still at modRev.
func (s *Store) Update(ctx context.Context, r model.Record, modRev int64, guards ...Guard) (int64, error) {
	v, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("store: encoding %s: %w", r.Kind(), err)
	}
	key := Key(r.Kind(), r.Key())
	resp, err := s.c.Txn(ctx).If(append([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", modRev)}, cmps(guards)...)...).
		Then(clientv3.OpPut(key, string(v))).Commit()
	if err != nil {
		return 0, unavailable(err)
	}
	if !resp.Succeeded {
		return 0, s.why(ctx, key, fmt.Errorf("%w: %s %s changed since revision %d", ErrConflict, r.Kind(), r.Key(), modRev), guards)
	}
	return resp.Header.Revision, nil
}

// Delete removes a record only if it is still at modRev.
func (s *Store) Delete(ctx context.Context, k model.Kind, id string, modRev int64, guards ...Guard) error {
	key := Key(k, id)
	resp, err := s.c.Txn(ctx).If(append([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", modRev)}, cmps(guards)...)...).
		Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return unavailable(err)
	}
	if !resp.Succeeded {
		return s.why(ctx, key, fmt.Errorf("%w: %s %s changed since revision %d", ErrConflict, k, id, modRev), guards)
	}
	return nil
}

// Put writes a record whatever its revision (for records one writer
// owns, such as discovered links); guards still fence it.
func (s *Store) Put(ctx context.Context, r model.Record, guards ...Guard) (int64, error) {
	v, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("store: encoding %s: %w", r.Kind(), err)
	}
	key := Key(r.Kind(), r.Key())
	resp, err := s.c.Txn(ctx).If(cmps(guards)...).Then(clientv3.OpPut(key, string(v))).Commit()
	if err != nil {
		return 0, unavailable(err)
	}
	if !resp.Succeeded {
		return 0, s.why(ctx, key, fmt.Errorf("store: put %s %s refused", r.Kind(), r.Key()), guards)
	}
	return resp.Header.Revision, nil
}

// Remove deletes a record whatever its revision (absent is fine).
func (s *Store) Remove(ctx context.Context, k model.Kind, id string, guards ...Guard) error {
	key := Key(k, id)
	resp, err := s.c.Txn(ctx).If(cmps(guards)...).Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return unavailable(err)
	}
	if !resp.Succeeded {
		return s.why(ctx, key, fmt.Errorf("store: remove %s %s refused", k, id), guards)
	}
	return nil
}

// Secret returns the cluster-wide secret stored under name, creating it
// (32 random bytes) if no replica has yet: the first writer wins, every
// replica reads the same bytes.
func (s *Store) Secret(ctx context.Context, name string) ([]byte, error) {
	key := Prefix + "secrets/" + name
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("store: secret %s: %w", name, err)
	}
	resp, err := s.c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(b))).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return nil, unavailable(err)
	}
	if resp.Succeeded {
		return b, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return nil, fmt.Errorf("store: secret %s vanished", name)
	}
	return kvs[0].Value, nil
}

// why tells a failed guard from a failed revision check.
func (s *Store) why(ctx context.Context, key string, def error, guards []Guard) error {
	if len(guards) == 0 {
		return def
	}
	resp, err := s.c.Txn(ctx).If(cmps(guards)...).Commit()
	if err == nil && !resp.Succeeded {
		return ErrFenced
	}
	return def
}

// Tx is a serializable read-modify-write transaction over model records
// (etcd's software transactional memory): reads are tracked, and the
// commit fails and retries if any of them changed.
type Tx struct {
	stm concurrency.STM
	// written holds the transaction's own writes (key under Prefix ->
	// value, nil for a delete), for Pending.
	written map[string]*string
}

func (t *Tx) wrote(key string, v *string) {
	if t.written == nil {
		t.written = map[string]*string{}
	}
	t.written[strings.TrimPrefix(key, Prefix)] = v
}

// Pending lists the transaction's own writes under prefix (a key under
// Prefix): puts maps key to value, dels holds deleted keys. A caller
// that lists a prefix outside the transaction (ListRaw) overlays them to
// see what the transaction has written so far.
func (t *Tx) Pending(prefix string) (puts map[string]string, dels map[string]bool) {
	puts, dels = map[string]string{}, map[string]bool{}
	for k, v := range t.written {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		if v == nil {
			dels[k] = true
		} else {
			puts[k] = *v
		}
	}
	return puts, dels
}

// Get reads a record in the transaction (nil if absent).
func (t *Tx) Get(k model.Kind, id string) (model.Record, error) {
	v := t.stm.Get(Key(k, id))
	if v == "" {
		return nil, nil
	}
	return decode(k, []byte(v))
}

// GetRaw reads any key under the prefix.
func (t *Tx) GetRaw(key string) string { return t.stm.Get(Prefix + key) }

// PutRaw writes any key under the prefix.
func (t *Tx) PutRaw(key, val string) { t.stm.Put(Prefix+key, val); t.wrote(key, &val) }

// DelRaw deletes any key under the prefix.
func (t *Tx) DelRaw(key string) { t.stm.Del(Prefix + key); t.wrote(key, nil) }

// Put writes a record.
func (t *Tx) Put(r model.Record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store: encoding %s: %w", r.Kind(), err)
	}
	s := string(v)
	t.stm.Put(Key(r.Kind(), r.Key()), s)
	t.wrote(Key(r.Kind(), r.Key()), &s)
	return nil
}

// Delete removes a record.
func (t *Tx) Delete(k model.Kind, id string) { t.stm.Del(Key(k, id)); t.wrote(Key(k, id), nil) }

// Txn runs fn in a serializable transaction, retrying on conflict. fn may
// run several times and must have no other side effects.
func (s *Store) Txn(ctx context.Context, fn func(*Tx) error) (int64, error) {
	var fnErr error
	resp, err := concurrency.NewSTM(s.c, func(stm concurrency.STM) error {
		fnErr = fn(&Tx{stm: stm})
		return fnErr
	}, concurrency.WithAbortContext(ctx), concurrency.WithIsolation(concurrency.Serializable))
	if err != nil {
		if fnErr != nil && err == fnErr {
			return 0, err // the caller's own error, untouched
		}
		if errors.Is(err, rpctypes.ErrTooManyOps) {
			return 0, fmt.Errorf("%w: %w", ErrTooLarge, err)
		}
		return 0, unavailable(err)
	}
	return resp.Header.Revision, nil
}

// Load reads every record at one revision.
func (s *Store) Load(ctx context.Context) (*model.Snapshot, error) {
	resp, err := s.c.Get(ctx, Prefix+"model/", clientv3.WithPrefix())
	if err != nil {
		return nil, unavailable(err)
	}
	recs := map[model.Kind]map[string]model.Record{}
	for _, kv := range resp.Kvs {
		k, id, ok := parseKey(string(kv.Key))
		if !ok {
			continue
		}
		r, err := decode(k, kv.Value)
		if err != nil {
			s.log.Warn("skipping undecodable record", "key", string(kv.Key), "err", err)
			continue
		}
		if recs[k] == nil {
			recs[k] = map[string]model.Record{}
		}
		recs[k][id] = r
	}
	return model.NewSnapshot(resp.Header.Revision, recs), nil
}

// quietCore drops the errors embedded etcd logs for its own listeners
// closing at shutdown, which are not errors.
type quietCore struct{ zapcore.Core }

func (c quietCore) With(fs []zapcore.Field) zapcore.Core { return quietCore{c.Core.With(fs)} }

func (c quietCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c quietCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	for _, f := range fs {
		if err, ok := f.Interface.(error); ok && f.Type == zapcore.ErrorType {
			if msg := err.Error(); strings.Contains(msg, "use of closed network connection") || strings.Contains(msg, "Server closed") || strings.Contains(msg, "server closed") {
				return nil
			}
		}
	}
	return c.Core.Write(e, fs)
}
