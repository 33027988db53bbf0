//! [`PeerSet`]: who a client can ask right now.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use tokio::sync::watch;

use super::PeerId;

/// The peers a client can reach now, by id and name.
///
/// The network side calls [`PeerSet::join`] and [`PeerSet::leave`] as peers connect and
/// disconnect; running syncs see each change: a joining peer enters their schedule (untried, so
/// it is asked soon), a departed one is asked nothing more, and the ranges it still had in flight
/// go back to the queue without counting against it. Cloning gives another handle to the same
/// set.
///
/// Invariant: an id is never reused within one set, so figures kept under an id always belong to
/// one peer.
#[derive(Clone, Debug)]
pub struct PeerSet {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    members: watch::Sender<Members>,
    next_id: AtomicUsize,
}

/// The members of a [`PeerSet`] at one moment: names by id.
pub type Members = BTreeMap<PeerId, String>;

impl Default for PeerSet {
    fn default() -> Self {
        Self::new()
    }
}

impl PeerSet {
    /// An empty set.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                members: watch::Sender::new(Members::new()),
                next_id: AtomicUsize::new(0),
            }),
        }
    }

    /// A set of these peers, with ids `0..n` in the order given.
    pub fn with_names<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        let set = Self::new();
        for name in names {
            set.join(name);
        }
        set
    }

    /// Adds a peer; returns its new id.
    pub fn join(&self, name: impl Into<String>) -> PeerId {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let name = name.into();
        self.inner.members.send_modify(|m| {
            m.insert(id, name);
        });
        id
    }

    /// Removes a peer; returns whether it was a member.
    pub fn leave(&self, peer: PeerId) -> bool {
        self.inner
            .members
            .send_if_modified(|m| m.remove(&peer).is_some())
    }

    /// Whether `peer` is a member now.
    pub fn contains(&self, peer: PeerId) -> bool {
        self.inner.members.borrow().contains_key(&peer)
    }

    /// The name of a member, or `peer #ID` for an id that is not (or no longer) one.
    pub fn name(&self, peer: PeerId) -> String {
        self.inner
            .members
            .borrow()
            .get(&peer)
            .cloned()
            .unwrap_or_else(|| format!("peer #{peer}"))
    }

    /// How many peers are members now.
    pub fn len(&self) -> usize {
        self.inner.members.borrow().len()
    }

    /// Whether there are no members now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The members now.
    pub fn members(&self) -> Members {
        self.inner.members.borrow().clone()
    }

    /// A receiver that sees every later change of the members.
    pub fn subscribe(&self) -> watch::Receiver<Members> {
        self.inner.members.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_reused() {
        let set = PeerSet::with_names(["a", "b"]);
        assert_eq!(set.members().keys().copied().collect::<Vec<_>>(), [0, 1]);
        assert!(set.leave(1));
        assert!(!set.leave(1), "a second leave is a no-op");
        assert_eq!(set.join("c"), 2, "the departed id stays retired");
        assert_eq!(set.name(2), "c");
        assert_eq!(set.name(1), "peer #1");
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn subscribers_see_changes() {
        let set = PeerSet::new();
        let mut rx = set.subscribe();
        assert!(!rx.has_changed().expect("open"));
        let id = set.join("x");
        assert!(rx.has_changed().expect("open"));
        assert!(rx.borrow_and_update().contains_key(&id));
        set.leave(id);
        assert!(rx.borrow_and_update().is_empty());
    }
}
