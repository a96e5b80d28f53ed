//go:build unix

package mesh

import "syscall"

// inheritsPipes says that a git process can inherit the gate's pipes as
// descriptors 3 and 4 (see refGate).
const inheritsPipes = true

// signal sends sig to the child's process group, which the child leads.
func (c *child) signal(sig syscall.Signal) {
	syscall.Kill(-c.pid, sig)
}

// supervisorSupported reports nil: a Supervisor runs on every Unix system.
func supervisorSupported() error { return nil }
