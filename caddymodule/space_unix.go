//go:build unix

package caddymodule

import "golang.org/x/sys/unix"

// minFreeInodes is how many free inodes a store needs to take writes:
// new message blocks and state files are new files.
const minFreeInodes = 64

// freeBytes returns the space an unprivileged writer may still use on the
// filesystem that holds dir; 0 while it has (almost) no free inodes, which
// also fails writes with ENOSPC.
func freeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	if st.Files > 0 && uint64(st.Ffree) < minFreeInodes {
		return 0, nil
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
