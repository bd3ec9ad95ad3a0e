package store

// Unavailable exposes the error classifier to tests.
var Unavailable = unavailable

// SetMirrorLoadedHook installs a hook run between the mirror's read and
// its watch; the returned func removes it.
func SetMirrorLoadedHook(h func(rev int64)) func() {
	mirrorLoadedHook.Store(&h)
	return func() { mirrorLoadedHook.Store(nil) }
}
