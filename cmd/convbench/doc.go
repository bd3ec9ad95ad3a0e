// Package convbench holds the issue 5 overlay benchmark (a gated test);
// see convbench_test.go.
package convbench
