package mesh

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// pktKind is what a pkt-line is: data, or one of the special packets.
type pktKind int

const (
	pktData  pktKind = iota
	pktFlush         // 0000
	pktDelim         // 0001
)

// maxPktData is the most data one pkt-line carries (65520 bytes with its header).
const maxPktData = 65516

// pktReader reads git's pkt-line framing.
type pktReader struct {
	r   *bufio.Reader
	buf [maxPktData]byte
}

func newPktReader(r io.Reader) *pktReader { return &pktReader{r: bufio.NewReaderSize(r, 64<<10)} }

// next reads one pkt-line. Its data is valid until the next call.
func (p *pktReader) next() (pktKind, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(p.r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, fmt.Errorf("pkt-line: truncated header")
		}
		return 0, nil, err
	}
	n, err := strconv.ParseUint(string(hdr[:]), 16, 16)
	if err != nil {
		return 0, nil, fmt.Errorf("pkt-line: bad length %q", hdr[:])
	}
	switch {
	case n == 0:
		return pktFlush, nil, nil
	case n == 1:
		return pktDelim, nil, nil
	case n < 4 || n-4 > maxPktData:
		return 0, nil, fmt.Errorf("pkt-line: bad length %d", n)
	}
	data := p.buf[:n-4]
	if _, err := io.ReadFull(p.r, data); err != nil {
		return 0, nil, fmt.Errorf("pkt-line: truncated packet: %w", err)
	}
	return pktData, data, nil
}

// text returns a data packet's text without its line feed.
func pktText(data []byte) string {
	if n := len(data); n > 0 && data[n-1] == '\n' {
		data = data[:n-1]
	}
	return string(data)
}

// pktDataReader reads the data packets that follow up to the next flush-pkt as
// one stream; a delim-pkt there is an error.
type pktDataReader struct {
	p    *pktReader
	rest []byte
	done bool
}

func (d *pktDataReader) Read(b []byte) (int, error) {
	for len(d.rest) == 0 {
		if d.done {
			return 0, io.EOF
		}
		kind, data, err := d.p.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		switch kind {
		case pktFlush:
			d.done = true
		case pktDelim:
			return 0, errors.New("pkt-line: delimiter inside data")
		default:
			d.rest = data
		}
	}
	n := copy(b, d.rest)
	d.rest = d.rest[n:]
	return n, nil
}

// pktWriter writes pkt-lines through a buffer, sent with flush.
type pktWriter struct {
	w *bufio.Writer
}

func newPktWriter(w io.Writer) *pktWriter { return &pktWriter{w: bufio.NewWriterSize(w, 64<<10)} }

func (p *pktWriter) data(b []byte) {
	for len(b) > 0 {
		n := min(len(b), maxPktData)
		fmt.Fprintf(p.w, "%04x", n+4)
		p.w.Write(b[:n])
		b = b[n:]
	}
}

// line writes s and a line feed as one packet.
func (p *pktWriter) line(s string) {
	fmt.Fprintf(p.w, "%04x%s\n", len(s)+5, s)
}

func (p *pktWriter) flushPkt() { p.w.WriteString("0000") }
func (p *pktWriter) delimPkt() { p.w.WriteString("0001") }

// send writes out what is buffered.
func (p *pktWriter) send() error { return p.w.Flush() }

// Write writes b as data packets (for io.Copy).
func (p *pktWriter) Write(b []byte) (int, error) {
	p.data(b)
	return len(b), nil
}
