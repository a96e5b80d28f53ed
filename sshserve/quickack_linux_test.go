package sshserve

import (
	"io"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

func TestQuickAckConn(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	hold := make(chan struct{})
	defer close(hold)
	go func() {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			return
		}
		c.Write([]byte("hello"))
		<-hold // keep the connection open: a FIN may reset the ACK mode
		c.Close()
	}()
	raw, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := withQuickAck(raw)
	defer c.Close()
	qc, ok := c.(*quickAckConn)
	if !ok {
		t.Fatalf("a TCP connection was not wrapped: %T", c)
	}
	data := make([]byte, 5)
	_, err = io.ReadFull(c, data)
	if err != nil || string(data) != "hello" {
		t.Fatalf("read %q, %v", data, err)
	}
	var v int
	qc.rc.Control(func(fd uintptr) { v, err = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK) })
	if err != nil || v != 1 {
		t.Fatalf("TCP_QUICKACK = %d, %v after a read", v, err)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if withQuickAck(a) != a {
		t.Fatal("a non-TCP connection was wrapped")
	}
}
