package pipeline

// Group and meter ids. Nimbus owns the ranges from GroupIDBase and
// MeterIDBase up; groups and meters below them are someone else's and the
// reconciler never touches them. Each app gets its own slice of each
// range, so two apps never hand out the same id:
//
//	groups  GroupBase(app) .. GroupBase(app)+GroupsPerApp-1   (1<<25 ids)
//	meters  MeterBase(app) .. MeterBase(app)+MetersPerApp-1   (1<<16 ids)
//
// The meters declared in Meters (shared by apps, installed on every
// switch that needs them) sit in the first slice, MeterIDBase+1 and up,
// which no app id reaches (app ids start at 1).
const (
	GroupIDBase  uint32 = 0x4e000000
	MeterIDBase  uint32 = 0x004e0000
	GroupsPerApp uint32 = 1 << 25
	MetersPerApp uint32 = 1 << 16
)

// OursGroup reports whether a group id is in Nimbus's range.
func OursGroup(id uint32) bool { return id >= GroupIDBase && id < 0xffffff00 }

// OursMeter reports whether a meter id is in Nimbus's range.
func OursMeter(id uint32) bool { return id >= MeterIDBase && id <= 0xffff0000 }

// GroupBase is the first group id of app's range.
func GroupBase(app AppID) uint32 { return GroupIDBase + uint32(app)*GroupsPerApp }

// MeterBase is the first meter id of app's range (for meters an app
// makes itself; shared ones are declared in Meters).
func MeterBase(app AppID) uint32 { return MeterIDBase + uint32(app)*MetersPerApp }

// GroupOwner returns the app whose range holds group id (0 if none).
func GroupOwner(id uint32) AppID {
	if !OursGroup(id) {
		return 0
	}
	return AppID((id - GroupIDBase) / GroupsPerApp)
}
