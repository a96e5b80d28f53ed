package portfwd

import (
	"errors"
	"io"
	"sync/atomic"
	"time"
)

// sideMeter is what a copy loop notes about one socket of a pair where the
// kernel's TCP_INFO is not used (outside Linux): the bytes read from it and
// when it last moved data either way.
type sideMeter struct {
	read atomic.Int64 // bytes read from the socket
	last atomic.Int64 // time since the pair started of the last read or write
}

// idle returns how long the socket has moved no data, at now, for a pair
// started at start.
func (m *sideMeter) idle(start, now time.Time) time.Duration {
	return now.Sub(start) - time.Duration(m.last.Load())
}

// meteredCopy copies src to dst through buf until src ends, noting on srcM
// the bytes read and on both meters the time data moved (relative to start).
// It returns the bytes written; the end of src is no error.
func meteredCopy(dst io.Writer, src io.Reader, srcM, dstM *sideMeter, start time.Time, buf []byte) (int64, error) {
	var total int64
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			srcM.last.Store(int64(time.Since(start)))
			srcM.read.Add(int64(n))
			w, werr := dst.Write(buf[:n])
			total += int64(w)
			dstM.last.Store(int64(time.Since(start)))
			if werr != nil {
				return total, werr
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return total, nil
			}
			return total, rerr
		}
	}
}
