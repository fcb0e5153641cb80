package partition

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// A Set is every partition of one partitions directory.
type Set struct {
	dir  string
	opts *Options

	mu    sync.Mutex
	parts map[string]*Partition
}

// LoadSet reads every <dir>/<name>/config.json. A bundle that does not load
// is kept as a failed partition; only an unreadable dir is an error (and the
// set is then empty, not nil).
func LoadSet(dir string, opts *Options) (*Set, error) {
	s := &Set{dir: dir, opts: opts, parts: map[string]*Partition{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return s, fmt.Errorf("partitions dir: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		p := New(filepath.Join(dir, e.Name()), opts)
		if _, err := p.Bundle(); err != nil {
			opts.Logf("%v", err)
		}
		s.parts[p.name] = p
	}
	return s, nil
}

// All returns the partitions in start order (order, then name).
func (s *Set) All() []*Partition {
	s.mu.Lock()
	all := make([]*Partition, 0, len(s.parts))
	for _, p := range s.parts {
		all = append(all, p)
	}
	s.mu.Unlock()
	sort.Slice(all, func(i, j int) bool {
		oi, oj := all[i].Order(), all[j].Order()
		if oi != oj {
			return oi < oj
		}
		return all[i].name < all[j].name
	})
	return all
}

// Get finds a partition by name.
func (s *Set) Get(name string) (*Partition, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.parts[name]
	if !ok {
		return nil, fmt.Errorf("partition %s: no such partition in %s", name, s.dir)
	}
	return p, nil
}

// byOrder groups partitions of equal order, lowest order first.
func byOrder(all []*Partition) [][]*Partition {
	var groups [][]*Partition
	for i, p := range all {
		if i == 0 || p.Order() != all[i-1].Order() {
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], p)
	}
	return groups
}

// StartAll starts every partition that loaded, lower orders first and equal
// orders concurrently. It returns how many started. Failures are logged and
// kept in each partition's state; they never stop the others.
func (s *Set) StartAll() int {
	n := 0
	for _, group := range byOrder(s.All()) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, p := range group {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer recoverLog(s.opts.Logf, "start "+p.name)
				if err := p.Start(); err != nil {
					s.opts.Logf("%v", err)
					return
				}
				mu.Lock()
				n++
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	return n
}

// ShutdownAll stops every partition for good, in reverse start order, equal
// orders concurrently, each by its own protocol within its stop timeout.
func (s *Set) ShutdownAll(a Action) {
	groups := byOrder(s.All())
	for i := len(groups) - 1; i >= 0; i-- {
		var wg sync.WaitGroup
		for _, p := range groups[i] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer recoverLog(s.opts.Logf, "shutdown "+p.name)
				if err := p.Shutdown(a); err != nil {
					s.opts.Logf("%v", err)
				}
			}()
		}
		wg.Wait()
	}
}
