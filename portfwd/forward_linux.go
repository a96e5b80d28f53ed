package portfwd

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// forward copies one direction of p until its source ends: the client to the
// server when toServer is set, else the server to the client.
func (p *pair) forward(toServer bool) (int64, error) {
	if toServer {
		return forward(p.server, p.client, p.clientRaw, p.preIn, p.bulkIn)
	}
	return forward(p.client, p.server, p.serverRaw, p.preOut, p.bulkOut)
}

var smallBufs = sync.Pool{New: func() any { b := make([]byte, smallCopy); return &b }}

// forward copies src to dst until src ends, returning the bytes copied. Short
// exchanges (a request, a reply, a handshake) go through a pooled buffer that
// is borrowed only once src has data, so an idle connection holds none; the
// first read that fills the buffer marks a bulk transfer, and the rest goes
// through io.Copy, which splices (two splice(2) calls per chunk and a pipe cost
// more than read and write for a kilobyte, and far less for megabytes).
//
// pre, bytes read from src before, is written first and not counted; bulk
// skips the first phase.
func forward(dst, src *net.TCPConn, srcRaw syscall.RawConn, pre []byte, bulk bool) (int64, error) {
	if len(pre) > 0 {
		if _, err := dst.Write(pre); err != nil {
			return 0, err
		}
	}
	if bulk {
		return io.Copy(dst, src)
	}
	var total int64
	for {
		var bp *[]byte
		var n int
		var rerr error
		err := srcRaw.Read(func(fd uintptr) bool {
			bp = smallBufs.Get().(*[]byte)
			for {
				n, rerr = syscall.Read(int(fd), *bp)
				if rerr != syscall.EINTR {
					break
				}
			}
			if rerr == syscall.EAGAIN {
				smallBufs.Put(bp)
				bp = nil
				return false // wait until readable, holding no buffer
			}
			return true
		})
		if err == nil && rerr != nil {
			err = os.NewSyscallError("read", rerr)
		}
		if err != nil {
			if bp != nil {
				smallBufs.Put(bp)
			}
			return total, err
		}
		if n <= 0 {
			smallBufs.Put(bp)
			return total, nil // end of input
		}
		w, werr := dst.Write((*bp)[:n])
		total += int64(w)
		smallBufs.Put(bp)
		if werr != nil {
			return total, werr
		}
		if n == smallCopy {
			m, err := io.Copy(dst, src)
			return total + m, err
		}
	}
}
