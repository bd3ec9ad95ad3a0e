package switches

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/ofproto"
	"github.com/nimbus-sdn/nimbus/reconcile"
)

// OFSwitch adapts an OpenFlow connection to reconcile.Switch: the
// reconciler diffs and orders changes, this adapter puts them on the wire
// (bundles when the switch allows, group-mods that fit one message).
type OFSwitch struct {
	Conn *ofproto.Conn
	// NoBundles is set once the switch refused a bundle.
	NoBundles bool
	// NoMeters is set once the switch refused a meter request.
	NoMeters bool
	Logger   *slog.Logger

	scratch []byte
}

// Dump reads flows, groups and meters.
func (s *OFSwitch) Dump(ctx context.Context) (*reconcile.Actual, error) {
	fs, err := s.Conn.DumpFlows(ctx, 0, 0)
	if err != nil {
		return nil, err
	}
	a := reconcile.NewActual()
	for i := range fs {
		if fs[i].UnknownMatch {
			a.AddUnmodelledMatch(&fs[i].Flow)
			continue
		}
		a.AddDumpedCounts(&fs[i].Flow, fs[i].Unknown, fs[i].Packets, fs[i].Bytes)
	}
	gs, err := s.Conn.DumpGroups(ctx)
	if err != nil {
		return nil, err
	}
	for i := range gs {
		a.State.Groups[gs[i].ID] = &gs[i]
	}
	if !s.NoMeters {
		ms, err := s.Conn.DumpMeters(ctx)
		var oe *ofproto.OFError
		switch {
		case errors.As(err, &oe):
			s.NoMeters = true
			s.log().Info("switch has no meter support", "err", err)
		case err != nil:
			return nil, err
		}
		for i := range ms {
			a.State.Meters[ms[i].ID] = &ms[i]
		}
	}
	return a, nil
}

func (s *OFSwitch) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return s.Conn.Logger()
}

// Apply sends meters first (OVS does not take them in bundles), then
// group and flow changes in one atomic bundle, then meter deletions.
func (s *OFSwitch) Apply(ctx context.Context, ops *reconcile.Ops) error {
	if len(ops.MeterAdds)+len(ops.MeterMods) > 0 {
		if err := s.meters(ctx, ops.MeterAdds, ops.MeterMods, nil); err != nil {
			return err
		}
	}
	err := s.main(ctx, ops, !s.NoBundles)
	if errors.Is(err, ofproto.ErrNoBundles) {
		s.NoBundles = true
		s.log().Warn("switch refused bundles; applying changes without atomicity", "err", err)
		err = s.main(ctx, ops, false)
	}
	var refused *reconcile.RefusedError
	if err != nil && !errors.As(err, &refused) {
		return err
	}
	if len(ops.MeterDels) > 0 {
		if err := s.meters(ctx, nil, nil, ops.MeterDels); err != nil {
			return err
		}
	}
	if refused != nil {
		return refused
	}
	return nil
}

func (s *OFSwitch) main(ctx context.Context, ops *reconcile.Ops, bundle bool) error {
	t := s.Conn.Begin(bundle)
	// Groups that cannot be encoded are found before anything is added:
	// in an atomic bundle, one flow naming a group that never got there
	// would fail everything.
	bad := reconcile.GroupRefusals(ops, func(add bool, g *flow.Group) error { return s.tryGroup(g, bundle) })
	var refused []reconcile.Refusal
	for _, g := range append(append([]*flow.Group{}, ops.GroupAdds...), ops.GroupMods...) {
		if err := bad[g.ID]; err != nil {
			refused = append(refused, reconcile.Refusal{Group: g, Err: err})
		}
	}
	added := make(map[uint32]bool, len(ops.GroupAdds))
	for _, g := range ops.GroupAdds {
		added[g.ID] = true
	}
	group := func(cmd uint16, g *flow.Group) {
		if bad[g.ID] != nil {
			return
		}
		if err := t.GroupMod(cmd, g); err != nil {
			refused = append(refused, reconcile.Refusal{Group: g, Err: err})
		}
	}
	fl := func(f *flow.Flow, o ofproto.FlowModOpts, checkGroups bool) {
		if checkGroups && bad != nil {
			if id, ok := reconcile.UsesGroup(f.Actions, bad, added); ok {
				refused = append(refused, reconcile.Refusal{Flow: f, Err: fmt.Errorf("switches: uses refused group 0x%x", id)})
				return
			}
		}
		if err := t.FlowMod(f, o); err != nil {
			refused = append(refused, reconcile.Refusal{Flow: f, Err: err})
		}
	}
	for _, g := range ops.GroupAdds {
		group(ofproto.GCAdd, g)
	}
	for _, g := range ops.GroupMods {
		group(ofproto.GCModify, g)
	}
	for _, f := range ops.FlowDels {
		fl(f, ofproto.FlowModOpts{Command: ofproto.FCDeleteStrict, CookieMask: ^uint64(0)}, false)
	}
	for _, f := range ops.FlowMods {
		fl(f, ofproto.FlowModOpts{Command: ofproto.FCModifyStrict, CookieMask: ^uint64(0)}, true)
	}
	for _, f := range ops.FlowAdds {
		fl(f, ofproto.FlowModOpts{Command: ofproto.FCAdd, BufferID: ofproto.NoBuffer}, true)
	}
	for _, g := range ops.GroupDels {
		group(ofproto.GCDelete, g)
	}
	if err := t.Commit(ctx); err != nil {
		return err
	}
	if len(refused) > 0 {
		return &reconcile.RefusedError{Refused: refused}
	}
	return nil
}

// tryGroup encodes g's add (the largest form) as it would be sent, into a
// scratch buffer, to learn whether it fits.
func (s *OFSwitch) tryGroup(g *flow.Group, bundle bool) error {
	enc := func(b []byte) ([]byte, error) { return ofproto.AppendGroupMod(b, 0, ofproto.GCAdd, g) }
	var err error
	if bundle {
		s.scratch, err = ofproto.AppendBundleAdd(s.scratch[:0], 0, 0, 0, enc)
	} else {
		s.scratch, err = enc(s.scratch[:0])
	}
	return err
}

func (s *OFSwitch) meters(ctx context.Context, adds, mods, dels []*flow.Meter) error {
	t := s.Conn.Begin(false)
	// A meter-mod is at most a few hundred bytes: it always encodes.
	var err error
	for _, m := range adds {
		err = errors.Join(err, t.MeterMod(ofproto.GCAdd, m))
	}
	for _, m := range mods {
		err = errors.Join(err, t.MeterMod(ofproto.GCModify, m))
	}
	for _, m := range dels {
		err = errors.Join(err, t.MeterMod(ofproto.GCDelete, m))
	}
	if err != nil {
		return fmt.Errorf("switches: meters: %w", err)
	}
	if err := t.Commit(ctx); err != nil {
		return fmt.Errorf("switches: meters: %w", err)
	}
	return nil
}
