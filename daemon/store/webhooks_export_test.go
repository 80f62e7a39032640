package store

// CachedStatements reports how many statements the store keeps prepared.
func (s *Store) CachedStatements() int {
	s.stmts.mu.Lock()
	defer s.stmts.mu.Unlock()
	return len(s.stmts.m)
}
