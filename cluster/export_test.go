package cluster

// SetObserveHook installs a hook the observer calls after deciding a
// slave role and before publishing it; the returned func removes it.
func SetObserveHook(h func(dpid uint64, r Role)) func() {
	observeHook.Store(&h)
	return func() { observeHook.Store(nil) }
}
