package portfwd

import (
	"bytes"
	"net"
	"os"
	"syscall"
)

// acceptRaw accepts one connection on the listener's socket, waiting in the
// runtime's poller while none is pending.
func acceptRaw(raw syscall.RawConn) (int, *net.TCPAddr, error) {
	fd := -1
	var peer *net.TCPAddr
	var aerr error
	err := raw.Read(func(lfd uintptr) bool {
		fd, peer, aerr = sysAccept(int(lfd))
		return aerr != syscall.EAGAIN
	})
	if err != nil {
		return -1, nil, err
	}
	if aerr != nil {
		return -1, nil, os.NewSyscallError("accept4", aerr)
	}
	return fd, peer, nil
}

// dispatch gives an accepted connection to an event loop: it picks a server
// with a free slot and starts the connect. It reports false, having changed
// nothing, when the connection must go the goroutine way.
func (f *Forwarder) dispatch(fd int, src *net.TCPAddr, fe *frontend, bd Bind, feSlots, global slots) bool {
	b := fe.backend
	if b == nil || bd.AcceptProxy {
		return false
	}
	a, ok := b.tryAcquire(src.IP)
	if !ok {
		return false
	}
	s := a.s
	c := &lconn{fe: fe, b: b, bcfg: a.bcfg, scfg: a.cfg, s: s, bd: bd, feSlots: feSlots, global: global, src: src, connecting: true}
	c.client.fd = fd // TCP_NODELAY from the listener (newListener)
	if a.cfg.SendProxy != NoProxy {
		if lsa, err := syscall.Getsockname(fd); err == nil {
			c.dst = sockaddrTCP(lsa)
		} else {
			c.dst = &net.TCPAddr{}
		}
		var hdr bytes.Buffer
		writeProxyHeader(&hdr, a.cfg.SendProxy, c.src, c.dst)
		c.server.setPend(hdr.Bytes())
	}
	c.tmo = newIdleTimeouts(fe.cfg.Timeouts, a.bcfg.Timeouts)
	fe.total.Add(1)
	fe.cur.Add(1)
	f.handlers.Add(1)
	sfd, err := sysDial(a.addr)
	if err == nil {
		c.server.fd = sfd
		l := f.loops[int(f.nextLoop.Add(1))%len(f.loops)]
		if err = l.add(c); err == nil {
			return true
		}
		sysClose(sfd)
	} else {
		err = os.NewSyscallError("connect", err)
	}
	// The connect (or its registration) failed at once.
	f.retryElsewhere(c, err)
	return true
}
