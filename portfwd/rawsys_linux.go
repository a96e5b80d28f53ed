package portfwd

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The event loops' system calls. Every one of them is on a non-blocking
// socket and returns at once, so they are made as raw system calls: the
// runtime's entersyscall/exitsyscall would let its monitor hand the
// goroutine's processor to another thread whenever a call takes over 20 µs,
// which a close or connect on loopback does (it runs the peer's TCP
// processing too). Measured in BenchmarkConnRate, that hand-off cost about a
// fifth of the forwarder's CPU time.

func errnoErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// rawIO makes a read-like raw system call on fd with the buffer p of n bytes
// and one more argument, retrying when a signal interrupts it. p stays an
// unsafe.Pointer up to the call, so the buffer is tracked until then.
func rawIO(trap uintptr, fd int, p unsafe.Pointer, n int, a4 uintptr) (int, error) {
	for {
		r, _, e := unix.RawSyscall6(trap, uintptr(fd), uintptr(p), uintptr(n), a4, 0, 0)
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}

func sysRead(fd int, b []byte) (int, error) {
	return rawIO(unix.SYS_READ, fd, unsafe.Pointer(unsafe.SliceData(b)), len(b), 0)
}

// sysSend writes b with send(2) flags (MSG_NOSIGNAL always: a closed peer is
// an EPIPE error, never a signal).
func sysSend(fd int, b []byte, flags int) (int, error) {
	return rawIO(unix.SYS_SENDTO, fd, unsafe.Pointer(unsafe.SliceData(b)), len(b), uintptr(flags|unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT))
}

func sysClose(fd int) {
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}

func sysShutdownWrite(fd int) {
	unix.RawSyscall(unix.SYS_SHUTDOWN, uintptr(fd), unix.SHUT_WR, 0)
}

// sysResetOnClose makes close(2) on fd send a reset instead of a FIN
// (SO_LINGER on, 0 seconds).
func sysResetOnClose(fd int) {
	l := unix.Linger{Onoff: 1, Linger: 0}
	unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_LINGER, uintptr(unsafe.Pointer(&l)), unsafe.Sizeof(l), 0)
}

func sysSetNoDelay(fd int) {
	one := int32(1)
	unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY, uintptr(unsafe.Pointer(&one)), 4, 0)
}

// rawAddr is a socket address in the kernel's layout, for connect(2).
type rawAddr struct {
	family int
	buf    [unix.SizeofSockaddrInet6]byte
	len    uintptr
}

// rawAddrOf returns the socket address of a literal IP:port, or nil for a
// host name (which goes the goroutine way, resolved at each connect).
func rawAddrOf(addr string) *rawAddr {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || ap.Addr().Zone() != "" {
		return nil // a zone needs the interface index: the net package resolves it
	}
	a := ap.Addr()
	var r rawAddr
	if a.Is4() || a.Is4In6() {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.buf))
		sa.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
		sa.Addr = a.Unmap().As4()
		r.family, r.len = unix.AF_INET, unix.SizeofSockaddrInet4
		return &r
	}
	sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&r.buf))
	sa.Family = unix.AF_INET6
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
	sa.Addr = a.As16()
	r.family, r.len = unix.AF_INET6, unix.SizeofSockaddrInet6
	return &r
}

// sysDial creates a non-blocking socket and starts its connect to a.
func sysDial(a *rawAddr) (int, error) {
	fd, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(a.family), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if e != 0 {
		return -1, e
	}
	sysSetNoDelay(int(fd))
	for {
		_, _, e = unix.RawSyscall(unix.SYS_CONNECT, fd, uintptr(unsafe.Pointer(&a.buf)), a.len)
		if e != unix.EINTR {
			break
		}
	}
	if e != 0 && e != unix.EINPROGRESS {
		sysClose(int(fd))
		return -1, e
	}
	return int(fd), nil
}

// sysAccept accepts a connection as a non-blocking socket and returns the
// peer's address.
func sysAccept(lfd int) (int, *net.TCPAddr, error) {
	var rsa unix.RawSockaddrAny
	size := uint32(unsafe.Sizeof(rsa))
	for {
		fd, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(lfd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&size)),
			unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
		switch e {
		case unix.EINTR, unix.ECONNABORTED:
			continue
		case 0:
			return int(fd), peerAddr(&rsa), nil
		}
		return -1, nil, e
	}
}

func peerAddr(rsa *unix.RawSockaddrAny) *net.TCPAddr {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return &net.TCPAddr{IP: net.IPv4(sa.Addr[0], sa.Addr[1], sa.Addr[2], sa.Addr[3]), Port: int(binary.BigEndian.Uint16(p[:]))}
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		ip := make(net.IP, net.IPv6len)
		copy(ip, sa.Addr[:])
		return &net.TCPAddr{IP: ip, Port: int(binary.BigEndian.Uint16(p[:]))}
	}
	return &net.TCPAddr{}
}

// sysEpollWait collects ready events without waiting.
func sysEpollWait(epfd int, events []unix.EpollEvent) (int, error) {
	return rawIO(unix.SYS_EPOLL_PWAIT, epfd, unsafe.Pointer(unsafe.SliceData(events)), len(events), 0) // timeout 0
}

func sysEpollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	return errnoErr(e)
}

// sockaddrTCP converts a socket address from the syscall package.
func sockaddrTCP(sa syscall.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: net.IPv4(a.Addr[0], a.Addr[1], a.Addr[2], a.Addr[3]), Port: a.Port}
	case *syscall.SockaddrInet6:
		return &net.TCPAddr{IP: append(net.IP(nil), a.Addr[:]...), Port: a.Port}
	}
	return &net.TCPAddr{}
}
