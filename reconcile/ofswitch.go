package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/ofproto"
)

// OFSwitch adapts an OpenFlow connection to the Switch interface.
type OFSwitch struct {
	Conn *ofproto.Conn
	// NoBundles is set once the switch refused a bundle.
	NoBundles bool
	// NoMeters is set once the switch refused a meter request.
	NoMeters bool
	Logger   *slog.Logger
}

// Dump reads flows, groups and meters.
func (s *OFSwitch) Dump(ctx context.Context) (*Actual, error) {
	fs, err := s.Conn.DumpFlows(ctx, 0, 0)
	if err != nil {
		return nil, err
	}
	a := NewActual()
	for i := range fs {
		a.AddDumped(&fs[i].Flow, fs[i].Unknown)
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
func (s *OFSwitch) Apply(ctx context.Context, ops *Ops) error {
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
	if err != nil {
		return err
	}
	if len(ops.MeterDels) > 0 {
		return s.meters(ctx, nil, nil, ops.MeterDels)
	}
	return nil
}

func (s *OFSwitch) main(ctx context.Context, ops *Ops, bundle bool) error {
	t := s.Conn.Begin(bundle)
	for _, g := range ops.GroupAdds {
		t.GroupMod(ofproto.GCAdd, g)
	}
	for _, g := range ops.GroupMods {
		t.GroupMod(ofproto.GCModify, g)
	}
	for _, f := range ops.FlowDels {
		t.FlowMod(f, ofproto.FlowModOpts{Command: ofproto.FCDeleteStrict, CookieMask: ^uint64(0)})
	}
	for _, f := range ops.FlowMods {
		t.FlowMod(f, ofproto.FlowModOpts{Command: ofproto.FCModifyStrict, CookieMask: ^uint64(0)})
	}
	for _, f := range ops.FlowAdds {
		t.FlowMod(f, ofproto.FlowModOpts{Command: ofproto.FCAdd, BufferID: ofproto.NoBuffer})
	}
	for _, g := range ops.GroupDels {
		t.GroupMod(ofproto.GCDelete, g)
	}
	return t.Commit(ctx)
}

func (s *OFSwitch) meters(ctx context.Context, adds, mods, dels []*flow.Meter) error {
	t := s.Conn.Begin(false)
	for _, m := range adds {
		t.MeterMod(ofproto.GCAdd, m)
	}
	for _, m := range mods {
		t.MeterMod(ofproto.GCModify, m)
	}
	for _, m := range dels {
		t.MeterMod(ofproto.GCDelete, m)
	}
	if err := t.Commit(ctx); err != nil {
		return fmt.Errorf("reconcile: meters: %w", err)
	}
	return nil
}
