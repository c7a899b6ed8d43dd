package agg

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// A table's compact form, for heartbeats: a dictionary of the strings it
// uses, then its keys in order, each as the window's delta from the one
// before and three dictionary indexes, with its count and revenue; all
// varints, gzip-compressed when larger than gzipOver (a small table is not
// worth a compressor's allocation at every heartbeat). The first byte says
// which. 60,000 keys of late events took 27 KB, where their JSON rows take
// some 8 MB.
const (
	binaryVersion = 1
	gzipOver      = 16 << 10
	plainForm     = 'p'
	gzipForm      = 'z'
)

// MarshalBinary encodes t compactly (see above).
func (t Table) MarshalBinary() ([]byte, error) {
	keys := make([]Key, 0, len(t))
	index := map[string]uint64{}
	var dict []string
	intern := func(s string) {
		if _, ok := index[s]; !ok {
			index[s] = uint64(len(dict))
			dict = append(dict, s)
		}
	}
	for k := range t {
		keys = append(keys, k)
		intern(k.EventType)
		intern(k.Country)
		intern(k.AdFormat)
	}
	slices.SortFunc(keys, CompareKeys)
	var raw []byte
	raw = binary.AppendUvarint(raw, binaryVersion)
	raw = binary.AppendUvarint(raw, uint64(len(dict)))
	for _, s := range dict {
		raw = binary.AppendUvarint(raw, uint64(len(s)))
		raw = append(raw, s...)
	}
	raw = binary.AppendUvarint(raw, uint64(len(keys)))
	var window int64
	for _, k := range keys {
		v := t[k]
		raw = binary.AppendVarint(raw, k.Window-window)
		window = k.Window
		raw = binary.AppendUvarint(raw, index[k.EventType])
		raw = binary.AppendUvarint(raw, index[k.Country])
		raw = binary.AppendUvarint(raw, index[k.AdFormat])
		raw = binary.AppendVarint(raw, v.Count)
		raw = binary.AppendVarint(raw, v.RevenueMicros)
	}
	if len(raw) <= gzipOver {
		return append([]byte{plainForm}, raw...), nil
	}
	out := bytes.NewBuffer([]byte{gzipForm})
	zw := gzip.NewWriter(out)
	if _, err := zw.Write(raw); err != nil {
		return nil, fmt.Errorf("compress table: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress table: %w", err)
	}
	return out.Bytes(), nil
}

// UnmarshalBinary decodes what MarshalBinary encoded into t, which must be
// empty.
func (t Table) UnmarshalBinary(b []byte) error {
	if len(b) == 0 {
		return errors.New("decode table: empty")
	}
	raw := b[1:]
	switch b[0] {
	case plainForm:
	case gzipForm:
		zr, err := gzip.NewReader(bytes.NewReader(b[1:]))
		if err != nil {
			return fmt.Errorf("decode table: %w", err)
		}
		if raw, err = io.ReadAll(zr); err != nil {
			return fmt.Errorf("decode table: %w", err)
		}
	default:
		return fmt.Errorf("decode table: unknown form %q", b[0])
	}
	r := bytes.NewReader(raw)
	var bad error
	uv := func() uint64 {
		v, err := binary.ReadUvarint(r)
		bad = errors.Join(bad, err)
		return v
	}
	sv := func() int64 {
		v, err := binary.ReadVarint(r)
		bad = errors.Join(bad, err)
		return v
	}
	if v := uv(); v != binaryVersion {
		return fmt.Errorf("decode table: version %d, want %d", v, binaryVersion)
	}
	n := uv()
	if bad != nil || n > uint64(len(raw)) {
		return fmt.Errorf("decode table: bad dictionary size %d: %v", n, bad)
	}
	dict := make([]string, n)
	for i := range dict {
		l := uv()
		if bad != nil || l > uint64(r.Len()) {
			return fmt.Errorf("decode table: string %d: bad length %d", i, l)
		}
		s := make([]byte, l)
		_, _ = io.ReadFull(r, s)
		dict[i] = string(s)
	}
	word := func() string {
		i := uv()
		if i >= uint64(len(dict)) {
			bad = errors.Join(bad, fmt.Errorf("index %d past the dictionary of %d", i, len(dict)))
			return ""
		}
		return dict[i]
	}
	// Keys come sorted and distinct (MarshalBinary): a key twice would drop
	// one of its totals, a window delta that overflows would move it.
	keys := uv()
	var window int64
	for i := uint64(0); i < keys && bad == nil; i++ {
		w, ok := addInt64(window, sv())
		if !ok {
			return fmt.Errorf("decode table: key %d: window overflows", i)
		}
		window = w
		k := Key{Window: window, EventType: word(), Country: word(), AdFormat: word()}
		if _, dup := t[k]; dup {
			return fmt.Errorf("decode table: key %d (%+v) appears twice", i, k)
		}
		t[k] = Totals{Count: sv(), RevenueMicros: sv()}
	}
	if bad != nil {
		return fmt.Errorf("decode table: %w", bad)
	}
	if r.Len() != 0 {
		return fmt.Errorf("decode table: %d bytes left over", r.Len())
	}
	return nil
}
