// Package e2e holds the end-to-end tests of the whole program: hookd serve
// and the CLI commands run in-process on loopback through the same
// cli.Program that main runs (harness_test.go), or as a built binary for
// the tests that kill or signal the process. The Node and browser fixtures
// are in testdata/.
package e2e
