package northbound

import "net/http"

// SetBulkItemHook makes item i of every bulk create of plural fail
// (inside the bulk's transaction, after the item was made) when fail
// says so; nil removes the hook. Tests only.
func SetBulkItemHook(fail func(plural string, i int) bool) {
	if fail == nil {
		bulkItemHook = nil
		return
	}
	bulkItemHook = func(plural string, i int) error {
		if fail(plural, i) {
			return errf(http.StatusInternalServerError, "HTTPInternalServerError", "injected failure in bulk item %d", i)
		}
		return nil
	}
}

// SetPolicyBypass turns the port create policy checks off (true) or on.
func SetPolicyBypass(off bool) { policyBypass.Store(off) }
