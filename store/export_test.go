package store

// Unavailable exposes the error classifier to tests.
var Unavailable = unavailable
