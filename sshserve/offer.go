package sshserve

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"slices"
	"strings"
	"time"
)

// In SSH the client chooses the cipher and the MAC: the first of its own list that
// the server also offers (RFC 4253, section 7.1). OpenSSH clients list
// chacha20-poly1305 first and AES-CTR before AES-GCM, so a server that offers the
// full OpenSSH set would run most sessions on the ciphers that cost it the most
// CPU. sshserve therefore reads the client's KEXINIT before it sends its own (both
// sides send theirs at once, so this costs no round trip) and offers, for the
// cipher and the MAC, only the first algorithm of its own list that the client
// supports. A client that supports AES-GCM gets AES-GCM; one that supports only
// chacha20-poly1305 or AES-CTR (Dropbear, libssh2, paramiko) still gets a cipher
// it has. When the client's offer cannot be read in time, or is not a KEXINIT, the
// whole configured lists are offered and the client chooses, as in plain SSH.

// offerWait bounds how long sshserve waits for the client's KEXINIT before it
// offers its whole lists. Every client seen sends it right after its version line;
// one that waits for the server's KEXINIT first costs this much once.
const offerWait = 2 * time.Second

// maxOfferPacket bounds the client's first packet (RFC 4253 requires support for
// packets of 35000 bytes).
const maxOfferPacket = 35000

// maxVersionBytes bounds the client's version line (RFC 4253: 255 bytes) and any
// lines before it.
const maxVersionBytes = 1024

// clientOffer is what the client's KEXINIT offers, in the client's order.
type clientOffer struct {
	version              string // the client's version line, without CR LF
	kex, hostKey         []string
	cipherC2S, cipherS2C []string
	macC2S, macS2C       []string
}

// offerConn is a connection whose first bytes from the client have already been
// read (they are replayed to the SSH handshake) and whose version line has
// already been sent (the handshake's copy of it is dropped).
type offerConn struct {
	net.Conn
	replay []byte // read ahead, returned first by Read
	sent   []byte // already written: the first Writes must repeat these bytes
}

func (c *offerConn) Read(b []byte) (int, error) {
	if len(c.replay) > 0 {
		n := copy(b, c.replay)
		c.replay = c.replay[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

func (c *offerConn) Write(b []byte) (int, error) {
	if len(c.sent) == 0 {
		return c.Conn.Write(b)
	}
	n := min(len(b), len(c.sent))
	if !bytes.Equal(b[:n], c.sent[:n]) {
		return 0, errors.New("sshserve: the handshake wrote another version line than the one sent")
	}
	c.sent = c.sent[n:]
	if n == len(b) {
		return n, nil
	}
	m, err := c.Conn.Write(b[n:])
	return n + m, err
}

// readOffer sends the server's version line, then reads the client's version line
// and first packet until deadline. It returns the connection to hand to the SSH
// handshake, which replays everything read, and the client's offer, or nil when it
// could not be read (the handshake then sees the same bytes, and the same error, as
// it would have).
func readOffer(nc net.Conn, serverVersion string, deadline time.Time) (net.Conn, *clientOffer) {
	line := []byte(serverVersion + "\r\n")
	oc := &offerConn{Conn: nc}
	n, err := nc.Write(line)
	if err != nil {
		oc.sent = line[n:] // the handshake fails on its write, as without the peek
		return oc, nil
	}
	oc.sent = line
	nc.SetReadDeadline(deadline)
	var buf []byte
	chunk := make([]byte, 4096)
	more := func() bool {
		n, err := nc.Read(chunk)
		buf = append(buf, chunk[:n]...)
		return err == nil || n > 0
	}
	// The version line: lines before one that starts with "SSH-" are skipped, as
	// the handshake skips them.
	start := 0
	version := ""
	for version == "" {
		i := bytes.IndexByte(buf[start:], '\n')
		if i < 0 {
			if len(buf) > maxVersionBytes || !more() {
				oc.replay = buf
				return oc, nil
			}
			continue
		}
		l := strings.TrimSuffix(string(buf[start:start+i]), "\r")
		start += i + 1
		if strings.HasPrefix(l, "SSH-") {
			version = l
		}
	}
	for len(buf)-start < 5 || len(buf)-start < 4+int(binary.BigEndian.Uint32(buf[start:])) {
		if len(buf)-start >= 4 {
			if l := binary.BigEndian.Uint32(buf[start:]); l > maxOfferPacket || l < 2 {
				oc.replay = buf
				return oc, nil
			}
		}
		if !more() {
			oc.replay = buf
			return oc, nil
		}
	}
	oc.replay = buf
	length := int(binary.BigEndian.Uint32(buf[start:]))
	packet := buf[start+4 : start+4+length]
	pad := int(packet[0])
	if pad+1 > len(packet) {
		return oc, nil
	}
	offer, ok := parseKexInit(packet[1 : len(packet)-pad])
	if !ok {
		return oc, nil
	}
	offer.version = version
	return oc, offer
}

// msgKexInit is SSH_MSG_KEXINIT.
const msgKexInit = 20

// parseKexInit parses a KEXINIT payload: the message number, a 16-byte cookie, ten
// name-lists and the first_kex_packet_follows flag.
func parseKexInit(p []byte) (*clientOffer, bool) {
	if len(p) < 17 || p[0] != msgKexInit {
		return nil, false
	}
	p = p[17:]
	var lists [10][]string
	for i := range lists {
		if len(p) < 4 {
			return nil, false
		}
		n := binary.BigEndian.Uint32(p)
		if uint64(n) > uint64(len(p)-4) {
			return nil, false
		}
		if n > 0 {
			lists[i] = strings.Split(string(p[4:4+n]), ",")
		}
		p = p[4+n:]
	}
	if len(p) < 1 {
		return nil, false
	}
	return &clientOffer{
		kex: lists[0], hostKey: lists[1],
		cipherC2S: lists[2], cipherS2C: lists[3],
		macC2S: lists[4], macS2C: lists[5],
	}, true
}

// serverChoice returns the first algorithm of ours that the client offers in both
// directions, as a list of one; with none in common it returns ours unchanged, so
// that the handshake fails with x/crypto's usual message.
func serverChoice(ours, c2s, s2c []string) []string {
	for _, a := range ours {
		if slices.Contains(c2s, a) && slices.Contains(s2c, a) {
			return []string{a}
		}
	}
	return ours
}
