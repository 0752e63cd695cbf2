//! A few connections shared by many callers: each caller takes a free one if there is one
//! (starting from a rotating index, so the load spreads), else waits for the next in turn.
//!
//! Written here rather than taken from r2d2 or deadpool: the connections are opened once,
//! at start, and never replaced (a broken one reports its error to its caller, as a single
//! connection did), so all a pool needs is this choice among a fixed set of mutexes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

pub(crate) struct Pool<C> {
    connections: Vec<Mutex<C>>,
    next: AtomicUsize,
}

impl<C> Pool<C> {
    /// A pool of the given connections; at least one.
    pub(crate) fn new(connections: Vec<C>) -> Pool<C> {
        assert!(!connections.is_empty(), "a pool of no connections");
        Pool {
            connections: connections.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, C> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.connections.len();
        for i in 0..n {
            if let Ok(connection) = self.connections[(start + i) % n].try_lock() {
                return connection;
            }
        }
        // A poisoned connection is still a connection: the panic that poisoned it was in a
        // caller's code, and SQLite and PostgreSQL roll back a transaction left open.
        self.connections[start % n].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_connection_is_passed_over_for_a_free_one() {
        let pool = Pool::new(vec![0, 1, 2]);
        let first = pool.lock();
        let second = pool.lock();
        let third = pool.lock();
        let mut taken = [*first, *second, *third];
        taken.sort();
        assert_eq!(taken, [0, 1, 2], "three callers hold three different connections");
    }
}
