package cache

import (
	"context"
	"testing"
)

func TestMemoryKeepsTheMostRecent(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(2)
	_ = m.Put(ctx, "a", "1", []byte("A"))
	_ = m.Put(ctx, "b", "1", []byte("B"))
	if _, _, ok, _ := m.Get(ctx, "a"); !ok { // a is now the most recent
		t.Fatal("a missing")
	}
	_ = m.Put(ctx, "c", "1", []byte("C"))
	if _, _, ok, _ := m.Get(ctx, "b"); ok {
		t.Error("b, the least recently used, was kept past the bound")
	}
	_ = m.Put(ctx, "a", "2", []byte("A2"))
	if gen, body, ok, _ := m.Get(ctx, "a"); !ok || gen != "2" || string(body) != "A2" {
		t.Errorf("a: %q %q %v", gen, body, ok)
	}
}
