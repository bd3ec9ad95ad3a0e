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

// add encodes one message with a fresh xid. A message that cannot be
// encoded (ErrTooLarge, ErrUnencodable) is not added, and its error is
// returned; the transaction stays usable.
func (t *Txn) add(desc fmt.Stringer, enc func(b []byte, xid uint32) ([]byte, error)) error {
	x := t.c.NextXid()
	var err error
	if t.bundle {
		t.buf, err = AppendBundleAdd(t.buf, x, t.id, BundleAtomic|BundleOrdered, func(b []byte) ([]byte, error) { return enc(b, x) })
	} else {
		t.buf, err = enc(t.buf, x)
	}
	if err != nil {
		return err
	}
	if !t.started {
		t.lo, t.started = x, true
	}
	t.hi = x
	t.n++
	if len(t.descs) < 10000 {
		t.descs[x] = desc
	}
	return nil
}

// FlowMod adds a flow-mod. A flow that cannot be encoded is left out and
// its error returned.
func (t *Txn) FlowMod(f *flow.Flow, o FlowModOpts) error {
	return t.add(f, func(b []byte, x uint32) ([]byte, error) { return AppendFlowMod(b, x, f, o) })
}

// GroupMod adds a group-mod. A group that cannot be encoded (too many
// buckets for one message) is left out and its error returned.
func (t *Txn) GroupMod(cmd uint16, g *flow.Group) error {
	return t.add(g, func(b []byte, x uint32) ([]byte, error) { return AppendGroupMod(b, x, cmd, g) })
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
// bundle because it does not support them; the caller can retry with
// Begin(false). Any other refusal (a slave connection's OFPBRC_IS_SLAVE,
// out of bundles...) is returned as it is: bundles still work.
var ErrNoBundles = errors.New("ofproto: switch does not support bundles")

// Error codes that mean "no bundle support" in reply to a bundle open.
const (
	brcBadType         = 1 // OFPBRC_BAD_TYPE: experimenter messages unknown
	brcBadExperimenter = 3 // OFPBRC_BAD_EXPERIMENTER: ONF id unknown
	brcBadExpType      = 4 // OFPBRC_BAD_EXP_TYPE: bundle control unknown

	etBundleFailed   = 17 // OFPET_BUNDLE_FAILED (OpenFlow 1.4 numbering)
	etExperimenter   = 0xffff
	bfcBadType       = 6    // OFPBFC_BAD_TYPE: bundle control type unsupported
	bfcBadFlags      = 7    // OFPBFC_BAD_FLAGS: atomic/ordered unsupported
	onfBundleErrBase = 2300 // OpenFlow 1.3 (ONF EXT-230): OFPBFC_x is experimenter error 2300+x
)

// bundlesUnsupported reports whether a switch's error in reply to a
// bundle open says it cannot do bundles at all. OVS answers a slave
// connection's bundle with BAD_REQUEST/IS_SLAVE, which says nothing about
// bundle support; only a switch that does not know the message
// (BAD_TYPE, BAD_EXPERIMENTER, BAD_EXP_TYPE) or the bundle type or flags
// (OFPBFC_BAD_TYPE, OFPBFC_BAD_FLAGS, in the OpenFlow 1.4 or the ONF 1.3
// encoding) turns bundles off.
func bundlesUnsupported(e *OFError) bool {
	switch e.Type {
	case ErrBadRequest:
		return e.Code == brcBadType || e.Code == brcBadExperimenter || e.Code == brcBadExpType
	case etBundleFailed:
		return e.Code == bfcBadType || e.Code == bfcBadFlags
	case etExperimenter:
		return len(e.Data) >= 4 && be.Uint32(e.Data) == ONFID &&
			(e.Code == onfBundleErrBase+bfcBadType || e.Code == onfBundleErrBase+bfcBadFlags)
	}
	return false
}

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
			if errors.As(err, &oe) && bundlesUnsupported(oe) {
				return fmt.Errorf("%w: %w", ErrNoBundles, err)
			}
			return fmt.Errorf("ofproto: bundle open: %w", err)
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

// ErrMeterInBundle: OVS does not accept meter mods inside bundles, so
// MeterMod is only valid in a transaction begun with bundle false.
var ErrMeterInBundle = errors.New("ofproto: meter mods cannot go in a bundle")

// MeterMod adds a meter-mod (only in a transaction begun with bundle
// false: ErrMeterInBundle otherwise).
func (t *Txn) MeterMod(cmd uint16, m *flow.Meter) error {
	if t.bundle {
		return ErrMeterInBundle
	}
	return t.add(m, func(b []byte, x uint32) ([]byte, error) { return AppendMeterMod(b, x, cmd, m) })
}
