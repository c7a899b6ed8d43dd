package event

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
)

// A small JSON scanner (RFC 8259) for Parser: it validates without building
// values. Its functions take the input and an index and return the index
// after what they scanned; errors are *Invalid "malformed JSON: ...".

// maxDepth bounds the nesting of values, as fastjson (which Parser used
// before) did: the record's object is at depth 1, its members' values at 2.
const maxDepth = 300

// plain tells the bytes that stand for themselves in a JSON string: not '"',
// not '\\' and not a control character. (Like encoding/json, the scanner does
// not check UTF-8: strings keep their bytes.)
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func syntaxError(b []byte, i int, want string) error {
	if i >= len(b) {
		return invalid("malformed JSON: unexpected end, want %s", want)
	}
	return invalid("malformed JSON: unexpected %q at offset %d, want %s", b[i:i+1], i, want)
}

// skipWS returns the index of the first byte from b[i] that is not JSON
// whitespace.
func skipWS(b []byte, i int) int {
	if i < len(b) && b[i] > ' ' {
		return i
	}
	for ; i < len(b); i++ {
		if c := b[i]; c != ' ' && c != '\n' && c != '\r' && c != '\t' {
			break
		}
	}
	return i
}

// scanString scans a string whose opening quote precedes b[i]. It returns the
// index after the closing quote and whether the string holds escapes.
func scanString(b []byte, i int) (int, bool, error) {
	esc := false
	for {
		if i = plainRun(b, i); i >= len(b) {
			return 0, false, syntaxError(b, i, `'"'`)
		}
		switch b[i] {
		case '"':
			return i + 1, esc, nil
		case '\\':
			esc = true
			if i+1 >= len(b) {
				return 0, false, syntaxError(b, i+1, "an escape")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || hex(b[i+2])|hex(b[i+3])|hex(b[i+4])|hex(b[i+5]) < 0 {
					return 0, false, invalid("malformed JSON: bad \\u escape at offset %d", i)
				}
				i += 6
			default:
				return 0, false, invalid("malformed JSON: bad escape %q at offset %d", b[i:i+2], i)
			}
		default:
			return 0, false, invalid("malformed JSON: control character %q in a string at offset %d", b[i:i+1], i)
		}
	}
}

// plainRun returns the index of the first byte from b[i] that is not plain
// (or len(b)), 8 bytes at a time.
func plainRun(b []byte, i int) int {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		// The high bit of a byte of m is set for bytes below 0x20 or equal
		// to '"' or '\\' (and maybe for bytes after such a byte, from the
		// borrow): (x - lo) &^ x & hi has a byte's high bit set if the byte
		// of x is zero, and the bytes of w and of w^c agree on the high bit.
		m := ((w - 0x20*lo) | ((w ^ '"'*lo) - lo) | ((w ^ '\\'*lo) - lo)) &^ w & hi
		if m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for i < len(b) && plain[b[i]] {
		i++
	}
	return i
}

// hex returns the value of a hexadecimal digit, or -1.
func hex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

func hex4(b []byte) rune {
	return rune(hex(b[0])<<12 | hex(b[1])<<8 | hex(b[2])<<4 | hex(b[3]))
}

// scanNumber scans a number starting at b[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(b []byte, i int) (int, error) {
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return 0, badNumber(b, start, i)
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return 0, badNumber(b, start, j)
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return 0, badNumber(b, start, j)
		}
		i = j
	}
	return i, nil
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

func badNumber(b []byte, start, i int) error {
	return invalid("malformed JSON: bad number %q at offset %d", truncate(string(b[start:min(i+1, len(b))])), start)
}

// literal scans lit (true, false or null) at b[i].
func literal(b []byte, i int, lit string) (int, error) {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit), nil
	}
	return 0, syntaxError(b, i, "a value")
}

// skipKey scans an object member's key and colon at b[i]; it returns the
// index of the value.
func skipKey(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return 0, syntaxError(b, i, "a string key")
	}
	i, _, err := scanString(b, i+1)
	if err != nil {
		return 0, err
	}
	if i = skipWS(b, i); i >= len(b) || b[i] != ':' {
		return 0, syntaxError(b, i, "':'")
	}
	if i = skipWS(b, i+1); i >= len(b) {
		return 0, syntaxError(b, i, "a value")
	}
	return i, nil
}

// skipValue scans any value starting at b[i], at nesting depth depth.
func skipValue(b []byte, i, depth int) (int, error) {
	var objects [maxDepth/64 + 1]uint64 // bit n: the container n deep is an object
	open := 0                           // containers open inside the value
	var err error
	for {
		// A value starts at b[i].
		if depth+open > maxDepth {
			return 0, invalid("malformed JSON: nested deeper than %d levels at offset %d", maxDepth, i)
		}
		if i >= len(b) {
			return 0, syntaxError(b, i, "a value")
		}
		switch c := b[i]; {
		case c == '{':
			if i = skipWS(b, i+1); i < len(b) && b[i] == '}' {
				i++
				break
			}
			objects[open/64] |= 1 << (open % 64)
			open++
			if i, err = skipKey(b, i); err != nil {
				return 0, err
			}
			continue
		case c == '[':
			if i = skipWS(b, i+1); i < len(b) && b[i] == ']' {
				i++
				break
			}
			objects[open/64] &^= 1 << (open % 64)
			open++
			continue
		case c == '"':
			i, _, err = scanString(b, i+1)
		case c == '-' || c >= '0' && c <= '9':
			i, err = scanNumber(b, i)
		case c == 't':
			i, err = literal(b, i, "true")
		case c == 'f':
			i, err = literal(b, i, "false")
		case c == 'n':
			i, err = literal(b, i, "null")
		default:
			return 0, syntaxError(b, i, "a value")
		}
		if err != nil {
			return 0, err
		}
		// The value ended: close containers up to the next value.
		for {
			if open == 0 {
				return i, nil
			}
			object := objects[(open-1)/64]&(1<<((open-1)%64)) != 0
			i = skipWS(b, i)
			if i < len(b) && b[i] == ',' {
				if i = skipWS(b, i+1); object {
					if i, err = skipKey(b, i); err != nil {
						return 0, err
					}
				}
				break
			}
			if i < len(b) && (object && b[i] == '}' || !object && b[i] == ']') {
				i++
				open--
				continue
			}
			if object {
				return 0, syntaxError(b, i, "',' or '}'")
			}
			return 0, syntaxError(b, i, "',' or ']'")
		}
	}
}

// notObject returns the error for a record that does not start with '{' at
// b[i] (after whitespace): malformed, or valid JSON but not an object.
func notObject(b []byte, i int) error {
	if i == len(b) {
		return syntaxError(b, i, "a value")
	}
	i, err := skipValue(b, i, 1)
	if err != nil {
		return err
	}
	if i = skipWS(b, i); i != len(b) {
		return syntaxError(b, i, "the end after the value")
	}
	return invalid("not a JSON object")
}

// appendUnescaped appends the contents of a valid JSON string, unescaped as
// fastjson (which Parser used before) did: a \u escape of a lone surrogate
// stays as written, and a surrogate escape followed by another \u escape
// makes one rune with it (U+FFFD if the two are not a pair).
func appendUnescaped(dst, s []byte) []byte {
	for {
		n := bytes.IndexByte(s, '\\')
		if n < 0 {
			return append(dst, s...)
		}
		dst = append(dst, s[:n]...)
		c := s[n+1]
		s = s[n+2:]
		switch c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(s)
			switch {
			case !utf16.IsSurrogate(r):
				dst = utf8.AppendRune(dst, r)
				s = s[4:]
			case len(s) < 10 || s[4] != '\\' || s[5] != 'u':
				dst = append(dst, '\\', 'u')
				dst = append(dst, s[:4]...)
				s = s[4:]
			default:
				dst = utf8.AppendRune(dst, utf16.DecodeRune(r, hex4(s[6:])))
				s = s[10:]
			}
		default: // '"', '\\', '/'
			dst = append(dst, c)
		}
	}
}
