//go:build !unix

package diskspace

// Stat reports errNoStatfs: the platform has no statfs.
func Stat(dir string) (Usage, error) { return Usage{}, errNoStatfs }
