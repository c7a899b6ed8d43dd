// Package cache holds the dashboard API's responses: in the process
// (Memory) or in Redis, shared by the API's replicas (Redis). An entry is
// stored with the generation of the data it was computed from, and served
// only while the data still has that generation: no entry expires by age,
// and none is ever served stale (internal/dashboard says what the
// generation is).
package cache

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Store keeps responses by key, each with the generation it was made at.
type Store interface {
	// Get returns the entry of key, if any.
	Get(ctx context.Context, key string) (gen string, body []byte, ok bool, err error)
	// Put stores an entry.
	Put(ctx context.Context, key, gen string, body []byte) error
}

// Memory is an in-process Store of at most Max entries (least recently
// used ones go first).
type Memory struct {
	Max int

	mu    sync.Mutex
	items map[string]*list.Element
	order *list.List // front: most recently used
}

type entry struct {
	key, gen string
	body     []byte
}

// NewMemory returns a Memory of at most max entries.
func NewMemory(max int) *Memory {
	return &Memory{Max: max, items: map[string]*list.Element{}, order: list.New()}
}

func (m *Memory) Get(_ context.Context, key string) (string, []byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.items[key]
	if !ok {
		return "", nil, false, nil
	}
	m.order.MoveToFront(el)
	e := el.Value.(*entry)
	return e.gen, e.body, true, nil
}

func (m *Memory) Put(_ context.Context, key, gen string, body []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.items[key]; ok {
		el.Value = &entry{key, gen, body}
		m.order.MoveToFront(el)
		return nil
	}
	m.items[key] = m.order.PushFront(&entry{key, gen, body})
	for m.order.Len() > max(m.Max, 1) {
		last := m.order.Back()
		m.order.Remove(last)
		delete(m.items, last.Value.(*entry).key)
	}
	return nil
}

// Redis is a Store in Redis: the API's replicas share it. Entries are kept
// at most KeepFor (memory's bound, not freshness: a stale entry is never
// served whatever its age).
type Redis struct {
	Client  *redis.Client
	Prefix  string
	KeepFor time.Duration
}

// NewRedis connects to Redis at addr and checks it answers.
func NewRedis(ctx context.Context, addr string) (*Redis, error) {
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 5 * time.Second, ReadTimeout: 2 * time.Second,
		WriteTimeout: 2 * time.Second, PoolSize: 64})
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("connect to Redis at %s (RTB_REDIS_ADDR): %w", addr, err)
	}
	return &Redis{Client: c, Prefix: "rtbpipe:api:", KeepFor: 6 * time.Hour}, nil
}

type stored struct {
	Gen  string `json:"g"`
	Body []byte `json:"b"`
}

func (r *Redis) Get(ctx context.Context, key string) (string, []byte, bool, error) {
	b, err := r.Client.Get(ctx, r.Prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return "", nil, false, nil
	}
	if err != nil {
		return "", nil, false, fmt.Errorf("redis get: %w", err)
	}
	var s stored
	if err := json.Unmarshal(b, &s); err != nil {
		return "", nil, false, nil // an entry of another format: a miss
	}
	return s.Gen, s.Body, true, nil
}

func (r *Redis) Put(ctx context.Context, key, gen string, body []byte) error {
	b, err := json.Marshal(stored{gen, body})
	if err != nil {
		return err
	}
	if err := r.Client.Set(ctx, r.Prefix+key, b, r.KeepFor).Err(); err != nil {
		return fmt.Errorf("redis set: %w", err)
	}
	return nil
}

// Close closes the connection pool.
func (r *Redis) Close() error { return r.Client.Close() }
