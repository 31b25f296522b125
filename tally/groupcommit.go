package tally

// Group commit. Every bundle, report and acknowledgement the tally server
// stores is appended to the round's journal and must be durable before its
// sender hears "stored". An fsync per request caps a round at a few hundred
// requests a second on most disks, so requests share them: a request writes
// its entry under the server's lock and waits; one goroutine at a time
// fsyncs whatever has been written, then applies those entries to the
// round, in journal order, and answers their requests. Entries written
// while an fsync runs wait for the next one. Nothing is applied (seen by
// keepers, counted in S) before it is durable, so a crash loses only
// entries whose senders were never answered and will retry.

// commitEntry writes e to r's journal and queues it for the next fsync; it
// runs with s.mu held. The returned channel is told, once, whether the
// entry is stored (nil: durable and applied) or failed; the caller waits
// for it without the lock.
func (s *Server) commitEntry(r *roundState, e journalEntry) (<-chan error, error) {
	if err := writeEntry(s.opts.DataDir, r, e); err != nil {
		return nil, err
	}
	p := &pendingEntry{e: e, done: make(chan error, 1)}
	r.batch = append(r.batch, p)
	if e.Collector != "" {
		r.pending[e.Collector] = true
	}
	if !r.syncing {
		r.syncing = true
		go s.commitBatches(r)
	}
	return p.done, nil
}

// commitBatches fsyncs r's journal until no entry waits, applying each
// batch once it is durable.
func (s *Server) commitBatches(r *roundState) {
	for {
		s.mu.Lock()
		batch := r.batch
		r.batch = nil
		if len(batch) == 0 {
			r.syncing = false
			s.mu.Unlock()
			return
		}
		f, created, upTo := r.jf, r.jcreated, r.journalWritten
		s.mu.Unlock()

		err := syncFile(f, created)

		s.mu.Lock()
		if err = synced(r, err, upTo); err != nil {
			// The journal was cut back to the entries stored before this
			// batch, so the entries written since fail too.
			batch = append(batch, r.batch...)
			r.batch = nil
		}
		bundles := false
		for _, p := range batch {
			if err == nil {
				r.apply(p.e)
				bundles = bundles || p.e.Bundles != nil
			}
			if p.e.Collector != "" {
				delete(r.pending, p.e.Collector)
			}
		}
		if bundles && s.st.Current == r {
			// New bundles concern the keepers, who fetch them.
			s.wake()
		} else {
			s.metrics.progress(s.st)
		}
		s.mu.Unlock()
		for _, p := range batch {
			p.done <- err
		}
	}
}
