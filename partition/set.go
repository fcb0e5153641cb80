package partition

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
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
		if err := ValidName(e.Name()); err != nil {
			opts.Logf("%s: skipped: %v", filepath.Join(dir, e.Name()), err)
			continue
		}
		p := New(filepath.Join(dir, e.Name()), opts)
		if _, err := p.Bundle(); err != nil {
			opts.Logf("%v", err)
		}
		s.parts[p.name] = p
	}
	s.checkDeps()
	return s, nil
}

// checkDeps fails, at load time, every partition whose org.metainit.after
// names an unknown partition, one ordered after it, or a cycle: waiting for
// them could only end in a timeout.
func (s *Set) checkDeps() {
	all := s.All()
	byName := map[string]*Partition{}
	for _, p := range all {
		byName[p.name] = p
	}
	after := func(p *Partition) []string {
		b, _ := p.Bundle()
		if b == nil {
			return nil
		}
		return b.Settings.After
	}
	for _, p := range all {
		for _, dep := range after(p) {
			d, ok := byName[dep]
			switch {
			case !ok:
				p.Invalidate(fmt.Errorf("%s: annotations[%q]: %q names no partition in %s", p, AnnAfter, dep, s.dir))
			case d.Order() > p.Order():
				p.Invalidate(fmt.Errorf("%s: annotations[%q]: %q has a higher org.metainit.order (%d > %d) and starts later", p, AnnAfter, dep, d.Order(), p.Order()))
			}
		}
	}
	// Cycles: depth-first search, colouring names grey while on the path.
	const white, grey, black = 0, 1, 2
	colour := map[string]int{}
	var path []string
	var visit func(name string) []string
	visit = func(name string) []string {
		colour[name] = grey
		path = append(path, name)
		for _, dep := range after(byName[name]) {
			if _, ok := byName[dep]; !ok {
				continue
			}
			switch colour[dep] {
			case grey:
				for i, n := range path {
					if n == dep {
						return append(append([]string(nil), path[i:]...), dep)
					}
				}
			case white:
				if c := visit(dep); c != nil {
					return c
				}
			}
		}
		path = path[:len(path)-1]
		colour[name] = black
		return nil
	}
	for _, p := range all {
		if colour[p.name] != white {
			continue
		}
		path = nil
		if cycle := visit(p.name); cycle != nil {
			err := fmt.Errorf("annotations[%q]: dependency cycle %s", AnnAfter, strings.Join(cycle, " → "))
			for _, n := range cycle[:len(cycle)-1] {
				byName[n].Invalidate(fmt.Errorf("%s: %w", byName[n], err))
			}
		}
	}
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

// Selection says which partitions boot (the kernel command line's
// metainit.partitions= and metainit.skip=). Empty Only means all.
type Selection struct {
	Only, Skip []string
}

func (sel Selection) wants(name string) bool {
	if slices.Contains(sel.Skip, name) {
		return false
	}
	return len(sel.Only) == 0 || slices.Contains(sel.Only, name)
}

// StartAll starts every selected partition that loaded, lower orders first,
// equal orders concurrently, each after the partitions its
// org.metainit.after names are ready. It returns how many started. Failures
// are logged and kept in each partition's state; they never stop the others.
func (s *Set) StartAll(sel Selection) int {
	n := 0
	for _, group := range byOrder(s.All()) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, p := range group {
			if !sel.wants(p.name) {
				s.opts.Logf("%s: not started (kernel command line)", p)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if s.startOne(p, sel) {
					mu.Lock()
					n++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	return n
}

// startOne starts p once the partitions it is to start after are ready,
// and reports whether it started. Failures are logged and kept in p's state.
func (s *Set) startOne(p *Partition, sel Selection) (started bool) {
	defer recoverLog(s.opts.Logf, "start "+p.name)
	if err := s.awaitDeps(p, sel); err != nil {
		p.Invalidate(err)
		s.opts.Logf("%v", err)
		return false
	}
	if err := p.Start(); err != nil {
		s.opts.Logf("%v", err)
		return false
	}
	return true
}

// awaitDeps waits until every partition p is to start after is ready.
func (s *Set) awaitDeps(p *Partition, sel Selection) error {
	b, err := p.Bundle()
	if b == nil {
		return err
	}
	for _, name := range b.Settings.After {
		if !sel.wants(name) {
			return fmt.Errorf("%s: start: after %s, which the kernel command line leaves out", p, name)
		}
		dep, err := s.Get(name)
		if err != nil {
			return fmt.Errorf("%s: start: after %w", p, err)
		}
		if err := dep.AwaitReady(b.Settings.ReadyTimeout); err != nil {
			return fmt.Errorf("%s: start: waiting for %w", p, err)
		}
	}
	return nil
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

// Reload rescans the partitions directory: new bundles are added and
// started, removed ones stopped and dropped, changed ones reported (a change
// applies at the partition's next start). It returns what it did, for the log
// and the caller.
func (s *Set) Reload(sel Selection) []string {
	var report []string
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return []string{fmt.Sprintf("partitions dir: %v", err)}
	}
	seen := map[string]bool{}
	var added []*Partition
	for _, e := range entries {
		if !e.IsDir() || ValidName(e.Name()) != nil {
			continue
		}
		seen[e.Name()] = true
		s.mu.Lock()
		p, ok := s.parts[e.Name()]
		s.mu.Unlock()
		dir := filepath.Join(s.dir, e.Name())
		if !ok {
			p = New(dir, s.opts)
			s.mu.Lock()
			s.parts[p.name] = p
			s.mu.Unlock()
			added = append(added, p)
			report = append(report, p.String()+": added")
			continue
		}
		if p.Reload(dir) {
			report = append(report, p.String()+": config.json changed; it applies at the next restart")
		}
	}
	var removed []*Partition
	s.mu.Lock()
	for name, p := range s.parts {
		if !seen[name] {
			removed = append(removed, p)
			delete(s.parts, name)
		}
	}
	s.mu.Unlock()
	s.checkDeps()
	for _, p := range removed {
		report = append(report, p.String()+": removed; stopping it")
		if err := p.Shutdown(ActionPoweroff); err != nil {
			report = append(report, err.Error())
		}
	}
	for _, p := range added {
		if !sel.wants(p.name) {
			continue
		}
		go s.startOne(p, sel)
	}
	return report
}
