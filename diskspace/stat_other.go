//go:build !unix

package diskspace

import "errors"

// errNoStatfs is returned where the platform cannot read free space.
var errNoStatfs = errors.New("free space cannot be read on this platform")

// Stat reports errNoStatfs: the platform has no statfs.
func Stat(dir string) (Usage, error) { return Usage{}, errNoStatfs }
