package topology

import "testing"

func BenchmarkLLDPFrame(b *testing.B) {
	key := []byte("cluster key")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = LLDPFrame(0xa1, uint32(i), 0x0200000000aa, key)
	}
}

func BenchmarkParseLLDP(b *testing.B) {
	key := []byte("cluster key")
	f := LLDPFrame(0xa1, 7, 0x0200000000aa, key)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, _, ok := ParseLLDP(f, key); !ok {
			b.Fatal("not parsed")
		}
	}
}
