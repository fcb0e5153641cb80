package partition

import (
	"reflect"
	"time"
)

// Status is what list and status print of a partition.
type Status struct {
	Name     string    `json:"name"`
	State    State     `json:"state"`
	Kind     Kind      `json:"kind,omitempty"`
	Pid      int       `json:"pid,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	ReadyIn  float64   `json:"ready_in_seconds,omitempty"`
	Restarts int       `json:"restarts"`
	LastExit string    `json:"last_exit,omitempty"`
	Error    string    `json:"error,omitempty"`
	Order    int       `json:"order"`
	Bundle   string    `json:"bundle,omitempty"`
	Init     string    `json:"init,omitempty"`
	Notify   string    `json:"notify_status,omitempty"`
	Usage    *Usage    `json:"usage,omitempty"`
}

// Status returns a snapshot of the partition.
func (p *Partition) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Status{Name: p.name, State: p.state, Restarts: p.restarts, LastExit: p.lastExit, Error: p.errMsg}
	b := p.bundle
	if p.inst != nil {
		b = p.inst.bundle
		s.Pid = p.inst.pid
		s.Started = p.inst.started
		s.ReadyIn = p.inst.readyIn.Seconds()
		s.Notify = p.inst.status
	}
	if b != nil {
		s.Kind, s.Order, s.Bundle, s.Init = b.Settings.Kind, b.Settings.Order, b.Dir, b.Init
	}
	return s
}

// Order is the partition's start order (0 when its bundle did not load).
func (p *Partition) Order() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bundle == nil {
		return 0
	}
	return p.bundle.Settings.Order
}

func sameSpec(a, b *Bundle) bool {
	return a.Rootfs == b.Rootfs && reflect.DeepEqual(a.Spec, b.Spec)
}
