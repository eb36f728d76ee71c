package sshclient

import (
	"bytes"
	"encoding/pem"
	"testing"
)

func pemEncode(b *pem.Block) []byte { return pem.EncodeToMemory(b) }

func TestPrefixWriter(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"lines", []string{"a\nb\n"}, "> a\n> b\n"},
		{"split across writes", []string{"hel", "lo\nwor", "ld\n"}, "> hello\n> world\n"},
		{"partial flushed", []string{"tail"}, "> tail\n"},
		{"crlf", []string{"dos\r\n"}, "> dos\n"},
		{"progress redraws keep the last", []string{"10%\r50%\r100%\n"}, "> 100%\n"},
		{"empty line", []string{"\n"}, "> \n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewPrefixWriter(&buf, "> ")
			for _, s := range tt.writes {
				if n, err := w.Write([]byte(s)); err != nil || n != len(s) {
					t.Fatalf("Write: %d, %v", n, err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if buf.String() != tt.want {
				t.Errorf("got %q, want %q", buf.String(), tt.want)
			}
		})
	}
}
