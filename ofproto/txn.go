package ofproto

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/nimbus-sdn/nimbus/flow"
)

// Txn batches flow and group mods and applies them in one ONF bundle
// (atomic and ordered), or, when the switch has no bundle support, as
// plain messages followed by a barrier. Errors are matched back to the
// message that caused them.
type Txn struct {
	c       *Conn
	bundle  bool
	id      uint32
	buf     []byte
	lo, hi  uint32
	n       int
	started bool
	descs   map[uint32]fmt.Stringer
}

// bundleSeq numbers bundles; ids only need to be unique per connection.
var bundleSeq atomic.Uint32

// Begin starts a transaction. With bundle false it falls back to
// flow-mods plus a barrier.
func (c *Conn) Begin(bundle bool) *Txn {
	return &Txn{c: c, bundle: bundle, id: bundleSeq.Add(1), descs: map[uint32]fmt.Stringer{}}
}

// Len is the number of messages in the transaction.
func (t *Txn) Len() int { return t.n }

func (t *Txn) xid(desc fmt.Stringer) uint32 {
	x := t.c.NextXid()
	if !t.started {
		t.lo, t.started = x, true
	}
	t.hi = x
	t.n++
	if len(t.descs) < 10000 {
		t.descs[x] = desc
	}
	return x
}

func (t *Txn) add(xid uint32, enc func([]byte) []byte) {
	if t.bundle {
		t.buf = AppendBundleAdd(t.buf, xid, t.id, BundleAtomic|BundleOrdered, enc)
	} else {
		t.buf = enc(t.buf)
	}
}

// FlowMod adds a flow-mod.
func (t *Txn) FlowMod(f *flow.Flow, o FlowModOpts) {
	x := t.xid(f)
	t.add(x, func(b []byte) []byte { return AppendFlowMod(b, x, f, o) })
}

// GroupMod adds a group-mod.
func (t *Txn) GroupMod(cmd uint16, g *flow.Group) {
	x := t.xid(g)
	t.add(x, func(b []byte) []byte { return AppendGroupMod(b, x, cmd, g) })
}

// TxnError lists the messages a switch rejected.
type TxnError struct {
	Errors []*OFError
	Descs  []string
}

func (e *TxnError) Error() string {
	s := fmt.Sprintf("ofproto: switch rejected %d message(s)", len(e.Errors))
	for i := range e.Errors {
		if i == 3 {
			s += "; ..."
			break
		}
		s += fmt.Sprintf("; %s: %v", e.Descs[i], e.Errors[i])
	}
	return s
}

// ErrNoBundles is returned by Commit when the switch refuses to open a
// bundle; the caller can retry with Begin(false).
var ErrNoBundles = errors.New("ofproto: switch does not support bundles")

// Commit sends everything and waits until the switch has applied it.
func (t *Txn) Commit(ctx context.Context) error {
	if t.n == 0 {
		return nil
	}
	c := t.c
	w := &batchWatch{lo: t.lo, hi: t.hi}
	c.pmu.Lock()
	c.watches = append(c.watches, w)
	c.pmu.Unlock()
	defer func() {
		c.pmu.Lock()
		for i, x := range c.watches {
			if x == w {
				c.watches = append(c.watches[:i], c.watches[i+1:]...)
				break
			}
		}
		c.pmu.Unlock()
	}()

	var out []byte
	var openX uint32
	var openCall *call
	if t.bundle {
		openX = c.NextXid()
		openCall = c.register(openX, false)
		out = AppendBundleControl(nil, openX, t.id, BundleOpenRequest, BundleAtomic|BundleOrdered)
	}
	out = append(out, t.buf...)
	finX := c.NextXid()
	if t.bundle {
		out = AppendBundleControl(out, finX, t.id, BundleCommitRequest, BundleAtomic|BundleOrdered)
	} else {
		out = AppendSimple(out, TypeBarrierReq, finX)
	}
	fin := c.register(finX, false)
	if err := c.writeBig(out); err != nil {
		return err
	}
	if t.bundle {
		if _, err := c.wait(ctx, openX, openCall); err != nil {
			c.unregister(finX)
			var oe *OFError
			if errors.As(err, &oe) && (oe.Type == ErrBadRequest || oe.Type == 17) {
				return fmt.Errorf("%w: %v", ErrNoBundles, err)
			}
			return err
		}
	}
	_, err := c.wait(ctx, finX, fin)
	c.pmu.Lock()
	errs := w.errs
	c.pmu.Unlock()
	if len(errs) > 0 {
		te := &TxnError{Errors: errs}
		for _, e := range errs {
			d := "message"
			if s := t.descs[e.Xid]; s != nil {
				d = s.String()
			}
			te.Descs = append(te.Descs, d)
		}
		return te
	}
	if err != nil {
		return fmt.Errorf("ofproto: commit of %d message(s): %w", t.n, err)
	}
	return nil
}

// MeterMod adds a meter-mod. OVS does not accept meter mods inside
// bundles, so this is only valid in a transaction begun with bundle false.
func (t *Txn) MeterMod(cmd uint16, m *flow.Meter) {
	if t.bundle {
		panic("ofproto: meter mods cannot go in a bundle")
	}
	x := t.xid(m)
	t.add(x, func(b []byte) []byte { return AppendMeterMod(b, x, cmd, m) })
}
