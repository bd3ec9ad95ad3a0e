package pipeline

import (
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/flow"
)

func TestBaseFlowsPassContract(t *testing.T) {
	for _, f := range BaseFlows() {
		if err := Check(f); err != nil {
			t.Errorf("base flow %s: %v", f, err)
		}
	}
	for _, f := range BaseFlows() {
		if f.Meter == 0 && punts(f.Actions) {
			t.Errorf("base flow %s punts to the controller without a meter", f)
		}
	}
	if len(BaseFlows()) != len(Tables) {
		t.Fatal("one miss flow per table")
	}
}

func TestTableIDsFollowDeclarationOrder(t *testing.T) {
	for i, tb := range Tables {
		if int(tb.ID()) != i || ByName(tb.Name) != tb || ByID(uint8(i)) != tb {
			t.Fatalf("table %s: id %d at index %d", tb.Name, tb.ID(), i)
		}
	}
}

func TestCheckRejectsContractBreaches(t *testing.T) {
	ok := &flow.Flow{Table: L2Forward.ID(), Priority: PriorityNormal, Cookie: Cookie(AppIsolation, 1),
		Match: flow.M().Set(flow.Reg1, 5).EthDst(flow.MustMAC("02:00:00:00:00:01")), Goto: ToVMACL.ID()}
	if err := Check(ok); err != nil {
		t.Fatalf("valid flow refused: %v", err)
	}
	cases := map[string]*flow.Flow{
		"no table 200":             {Table: 200, Cookie: Cookie(AppIsolation, 1)},
		"lacks the nimbus":         {Table: L2Forward.ID(), Priority: 5, Cookie: 0x1234},
		"may not write table":      {Table: L3Routing.ID(), Priority: 5, Cookie: Cookie(AppLearning, 1)},
		"needs dl_type":            {Table: L2Forward.ID(), Priority: 5, Cookie: Cookie(AppIsolation, 1), Match: flow.M().Set(flow.IPv4Dst, 1)},
		"does not match on":        {Table: L2Learning.ID(), Priority: 5, Cookie: Cookie(AppLearning, 1), Match: flow.M().Set(flow.Reg1, 1)},
		"may not goto":             {Table: L2Forward.ID(), Priority: 5, Cookie: Cookie(AppIsolation, 1), Goto: Classifier.ID() + 1},
		"may not resubmit":         {Table: L2Forward.ID(), Priority: 5, Cookie: Cookie(AppIsolation, 1), Actions: []flow.Action{flow.Resubmit{InPort: flow.PortInPort, Table: Output.ID()}}},
		"miss band":                {Table: L2Forward.ID(), Priority: PriorityMiss, Cookie: Cookie(AppIsolation, 1)},
		"dynamic flow":             {Table: L2Forward.ID(), Priority: 5, Cookie: DynamicCookie(AppIsolation, 1)},
		"without a meter":          {Table: L2Learning.ID(), Priority: 5, Cookie: Cookie(AppLearning, 1), Actions: []flow.Action{flow.Output{Port: flow.PortController}}},
		"may not set":              {Table: Output.ID(), Priority: 5, Cookie: Cookie(AppIsolation, 1), Actions: []flow.Action{flow.SetField{F: flow.EthDst, Value: 1}}},
		"may not set dl_vlan":      {Table: PortSecurity.ID(), Priority: 5, Cookie: Cookie(AppIsolation, 1), Actions: []flow.Action{flow.PopVLAN{}}},
		"may not set arp_tha":      {Table: L2Forward.ID(), Priority: 5, Cookie: Cookie(AppIsolation, 1), Actions: []flow.Action{flow.Move{Src: flow.ARPSha, Dst: flow.ARPTha, NBits: 48}}},
		"output does not match on": {Table: Output.ID(), Priority: 5, Cookie: Cookie(AppIsolation, 1), Match: flow.M().EthDst(1)},
		"cannot be masked":         {Table: L2Forward.ID(), Priority: 5, Cookie: Cookie(AppIsolation, 1), Match: flow.M().SetMasked(flow.EthType, 0x800, 0xff00)},
	}
	for want, f := range cases {
		err := Check(f)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v", want, err)
		}
	}
}

func TestCookieLayout(t *testing.T) {
	c := Cookie(AppNAT, ObjectID("4e8e5957-649f-477b-9e5b-f1f75b21c03c"))
	if !IsOurs(c) || IsDynamic(c) || CookieApp(c) != AppNAT || CookieObject(c) != ObjectID("4e8e5957-649f-477b-9e5b-f1f75b21c03c") {
		t.Fatalf("cookie 0x%x does not round-trip", c)
	}
	d := DynamicCookie(AppLearning, 3)
	if !IsDynamic(d) || CookieApp(d) != AppLearning || CookieObject(d) != 3 {
		t.Fatalf("dynamic cookie 0x%x", d)
	}
	if IsOurs(0) || IsOurs(0x12) {
		t.Fatal("foreign cookies claimed")
	}
}

func TestBitAllocationsDoNotOverlap(t *testing.T) {
	for i, a := range AllBits {
		if a.Ofs+a.NBits > uint16(8*a.Field.Def().Bytes) {
			t.Errorf("%s overflows %s", a.Name, a.Field)
		}
		for _, b := range AllBits[i+1:] {
			if a.Field == b.Field && a.Mask()&b.Mask() != 0 {
				t.Errorf("%s and %s overlap in %s", a.Name, b.Name, a.Field)
			}
		}
	}
}

func TestChainGroup(t *testing.T) {
	for _, n := range []int{0, 1, MaxGroupBuckets, MaxGroupBuckets + 1, 2*MaxGroupBuckets - 1, 2 * MaxGroupBuckets, 5000} {
		var buckets []flow.Bucket
		for i := 0; i < n; i++ {
			buckets = append(buckets, flow.Bucket{Actions: []flow.Action{flow.Output{Port: uint32(i + 1)}}})
		}
		ids := uint32(100)
		gs := ChainGroup(7, buckets, func() uint32 { ids++; return ids })
		byID := map[uint32]*flow.Group{}
		for _, g := range gs {
			if len(g.Buckets) > MaxGroupBuckets {
				t.Fatalf("n=%d: group %d has %d buckets", n, g.ID, len(g.Buckets))
			}
			byID[g.ID] = g
		}
		// Walk the chain from the head.
		var got []uint32
		seen := map[uint32]bool{}
		for id := uint32(7); ; {
			g := byID[id]
			if g == nil || seen[id] {
				t.Fatalf("n=%d: chain broken or looping at %d", n, id)
			}
			seen[id] = true
			id = 0
			for _, b := range g.Buckets {
				switch a := b.Actions[0].(type) {
				case flow.Output:
					got = append(got, a.Port)
				case flow.GroupAction:
					id = a.ID
				}
			}
			if id == 0 {
				break
			}
		}
		if len(seen) != len(gs) || len(got) != n {
			t.Fatalf("n=%d: walked %d groups of %d, %d outputs", n, len(seen), len(gs), len(got))
		}
		for i, p := range got {
			if p != uint32(i+1) {
				t.Fatalf("n=%d: output %d is port %d", n, i, p)
			}
		}
	}
}

func TestBitsSetAndMatch(t *testing.T) {
	if got := RegOutPort.Set(7); got != (flow.SetField{F: flow.Reg3, Value: 7}) {
		t.Errorf("whole register: %+v", got)
	}
	if got := RegNetwork.Set(5); got != (flow.SetField{F: flow.Reg1, Value: 5, Mask: 0xffffff}) {
		t.Errorf("part of a register: %+v", got)
	}
	m := RegPortClass.Match(nil, ClassTunnel)
	if len(m) != 1 || m[0].F != flow.Reg0 || m[0].Value != ClassTunnel || m[0].Mask != 0xf {
		t.Errorf("masked match: %+v", m)
	}
	if got := SetClass(ClassVM, FlagFromVM); got.Value != 0x11 || got.Mask != 0x1f {
		t.Errorf("class and flag: %+v", got)
	}
}

func TestIDRangesPerApp(t *testing.T) {
	for a := AppPipeline; a <= AppTopology; a++ {
		lo, hi := GroupBase(a), GroupBase(a)+GroupsPerApp-1
		if !OursGroup(lo) || !OursGroup(hi) || GroupOwner(lo) != a || GroupOwner(hi) != a {
			t.Errorf("app %s: group range %#x..%#x", a, lo, hi)
		}
		if mlo, mhi := MeterBase(a), MeterBase(a)+MetersPerApp-1; !OursMeter(mlo) || !OursMeter(mhi) {
			t.Errorf("app %s: meter range %#x..%#x", a, mlo, mhi)
		}
	}
	for _, m := range Meters {
		if m.ID <= MeterIDBase || m.ID >= MeterBase(AppPipeline) {
			t.Errorf("declared meter %s %#x outside the shared slice", m.Name, m.ID)
		}
	}
}

func TestCheckGroupsFollowsTheFlowsTable(t *testing.T) {
	f := &flow.Flow{Table: L2Forward.ID(), Priority: PriorityDefault, Cookie: Cookie(AppIsolation, 1),
		Actions: []flow.Action{flow.GroupAction{ID: 10}}}
	good := map[uint32]*flow.Group{
		10: {ID: 10, Buckets: []flow.Bucket{
			{Actions: []flow.Action{RegOutPort.Set(1), flow.Resubmit{InPort: flow.PortInPort, Table: ToVMACL.ID()}}},
			{Actions: []flow.Action{flow.GroupAction{ID: 11}}}}},
		11: {ID: 11, Buckets: []flow.Bucket{{Actions: []flow.Action{flow.PushVLAN{EthType: flow.EthTypeVLAN}, flow.SetField{F: flow.VlanVID, Value: flow.VlanPresent | 5}, flow.Output{Port: 2}}}}},
	}
	if err := CheckGroups(f, good); err != nil {
		t.Fatalf("valid flood group refused: %v", err)
	}
	for want, g := range map[string]*flow.Group{
		"sets dl_src":        {ID: 11, Buckets: []flow.Bucket{{Actions: []flow.Action{flow.SetField{F: flow.EthSrc, Value: 1}, flow.Output{Port: 2}}}}},
		"resubmits to table": {ID: 11, Buckets: []flow.Bucket{{Actions: []flow.Action{flow.Resubmit{InPort: flow.PortInPort, Table: Classifier.ID()}}}}},
	} {
		bad := map[uint32]*flow.Group{10: good[10], 11: g}
		if err := CheckGroups(f, bad); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s (chained group): got %v", want, err)
		}
	}
}

// Per-project meters: each project's id is in its app's meter slice
// (never the shared one, never another app's), differs between projects
// (these two), and a flow may use it only under its app's cookie.
func TestProjectMeters(t *testing.T) {
	for _, m := range ProjectMeters {
		a, b := m.ID("project-a"), m.ID("project-b")
		for _, id := range []uint32{a, b} {
			if id <= MeterBase(m.App) || id >= MeterBase(m.App)+MetersPerApp || !OursMeter(id) {
				t.Errorf("%s: id %#x outside app %s's meter slice", m.Name, id, m.App)
			}
		}
		if a == b {
			t.Errorf("%s: two projects share meter %#x", m.Name, a)
		}
		if ms := m.Add(m.Add(m.Add(nil, "project-a"), "project-b"), "project-a"); len(ms) != 2 || ms[0].ID != a || ms[1].ID != b {
			t.Errorf("%s: Add gave %v, want project-a's and project-b's meters once each", m.Name, ms)
		}
		if m.Meter("project-a").ID != a || m.Meter("project-a").Bands[0].Rate != m.RatePPS {
			t.Errorf("%s: meter %+v", m.Name, m.Meter("project-a"))
		}
		var own *Table // a table the app owns
		for _, tb := range Tables {
			if tb.Owner == m.App {
				own = tb
				break
			}
		}
		punt := func(app AppID) *flow.Flow {
			return &flow.Flow{Table: own.ID(), Priority: PriorityNormal, Cookie: Cookie(app, 1), Meter: a,
				Match:   flow.M().EthType(flow.EthTypeIPv4),
				Actions: []flow.Action{flow.Output{Port: flow.PortController, MaxLen: flow.MaxLenNoBuffer}}}
		}
		if err := Check(punt(m.App)); err != nil {
			t.Errorf("%s: %v", m.Name, err)
		}
		if err := Check(punt(AppPipeline)); err == nil {
			t.Errorf("%s: the pipeline's flow may use app %s's per-project meter", m.Name, m.App)
		}
	}
}
