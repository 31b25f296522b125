package loadtest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is what one process of the load test cost.
type Process struct {
	// Role is "tally", "keeper" or "loadgen" (the simulated collectors,
	// in the load test's own process).
	Role string `json:"role"`
	Name string `json:"name"`
	// CPUSeconds is user + system CPU time over the whole run.
	CPUSeconds float64 `json:"cpu_seconds"`
	// PeakRSSBytes is the peak resident set size (VmHWM, ru_maxrss).
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// DiskWriteBytes is what the process wrote to the block layer
	// (ru_oublock × 512): journal, state and outcome files with their
	// rewrites, not counting files deleted before being flushed.
	DiskWriteBytes int64 `json:"disk_write_bytes"`
	// ExitError is how the process ended, if not cleanly.
	ExitError string `json:"exit_error,omitempty"`
	// Killed is set for a keeper the load test stopped because it had
	// not exited 30 s after the tally server did (it may have missed the
	// server's last answer); its ExitError is then left empty.
	Killed bool `json:"killed,omitempty"`
}

// child is a privstats process the load test started.
type child struct {
	role, name string
	cmd        *exec.Cmd
	log        string
	done       chan struct{}
	err        error
	// last is the latest reading from /proc, for a process that must be
	// killed (its rusage then is still exact, but a reading keeps the
	// figures if Wait cannot give them).
	last   Process
	killed bool
}

// startChild starts binary with args, its output going to dir/name.log.
func startChild(binary, dir, role, name string, args ...string) (*child, error) {
	c := &child{role: role, name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	f, err := os.OpenFile(c.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	c.cmd = exec.Command(binary, args...)
	c.cmd.Dir = dir
	c.cmd.Stdout, c.cmd.Stderr = f, f
	if err := c.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		f.Close()
		close(c.done)
	}()
	return c, nil
}

// exited says whether the process has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// waitOrKill waits up to d for the process to exit, then kills it.
func (c *child) waitOrKill(d time.Duration) {
	select {
	case <-c.done:
		return
	case <-time.After(d):
	}
	if p, err := readProc(c.cmd.Process.Pid); err == nil {
		c.last = p
	}
	c.killed = true
	c.cmd.Process.Kill()
	<-c.done
}

// usage is what the process cost, from its rusage once it has exited.
func (c *child) usage() Process {
	p := Process{Role: c.role, Name: c.name}
	if st := c.cmd.ProcessState; st != nil {
		p.CPUSeconds = (st.UserTime() + st.SystemTime()).Seconds()
		if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
			p.PeakRSSBytes = ru.Maxrss * 1024 // kilobytes on Linux
			p.DiskWriteBytes = ru.Oublock * 512
		}
	}
	p.CPUSeconds = max(p.CPUSeconds, c.last.CPUSeconds)
	p.PeakRSSBytes = max(p.PeakRSSBytes, c.last.PeakRSSBytes)
	p.Killed = c.killed
	if c.err != nil && !c.killed {
		p.ExitError = c.err.Error()
	}
	return p
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// readProc reads a running process's CPU time (/proc/PID/stat utime +
// stime) and peak RSS (/proc/PID/status VmHWM).
func readProc(pid int) (Process, error) {
	var p Process
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return p, err
	}
	// The command name (field 2) may hold spaces; the fields after its
	// closing parenthesis are fixed: state is field 3, utime 14, stime 15.
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return p, errors.New("malformed /proc stat")
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 13 {
		return p, errors.New("short /proc stat")
	}
	utime, err1 := strconv.ParseUint(fields[11], 10, 64)
	stime, err2 := strconv.ParseUint(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return p, err
	}
	p.CPUSeconds = float64(utime+stime) / clockTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return p, err
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return p, fmt.Errorf("VmHWM: %w", err)
			}
			p.PeakRSSBytes = kb * 1024
		}
	}
	return p, nil
}

// selfUsage is the load generator's own cost so far (getrusage).
func selfUsage() Process {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return Process{Role: "loadgen", Name: "loadgen",
		CPUSeconds:     time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds(),
		PeakRSSBytes:   ru.Maxrss * 1024,
		DiskWriteBytes: ru.Oublock * 512}
}

// dirBytes is the total size of the regular files under dir.
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			n += info.Size()
		}
		return nil
	})
	return n
}
