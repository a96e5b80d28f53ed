//go:build unix

package mesh

import (
	"os"
	"syscall"
)

// mkfifo makes the FIFO a pack-objects hook reads its pack from.
func mkfifo(path string) error { return syscall.Mkfifo(path, 0o600) }

// openFifo opens a FIFO for reading and writing, which does not wait for the
// hook to open it; the hook sees end of file once this descriptor is closed.
func openFifo(path string) (*os.File, error) { return os.OpenFile(path, os.O_RDWR, 0) }
