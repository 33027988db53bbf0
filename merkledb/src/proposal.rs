//! Proposals: a batch of changes on top of the database or of another proposal, with its root
//! computed before anything is written.
//!
//! Lifecycle: `Db::propose` / `Proposal::propose` create a proposal (hashing happens there, in
//! parallel where it pays); `Proposal::commit` applies it in one atomic store batch. Committing a
//! proposal invalidates every proposal built on the same base that is not its descendant
//! ([`Error::Invalid`]); children of a committed proposal become committable in turn.
//!
//! A proposal with an empty batch is a *view*: a consistent read handle on a state. Historical
//! views (`Db::view_at`, in `history`) are read-only proposals carrying the inverse of the newer
//! commits. The commit protocol is in `commit`.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
};

use crate::{
    changes::Changes,
    db::{CommittedNodes, Db, DbInner, SeenValues, State, root_hash},
    error::{CorruptionError, Error, Result},
    hash::Hash,
    key::Key,
    layout::encode_undo,
    node::{Node, SubRoot},
    store::Space,
    trie::{Applied, Change, NodeChange, NodeSource, apply},
};

mod commit;
mod history;

/// A batch operation: a key and its new value (`None` deletes).
pub type BatchOp = (Vec<u8>, Option<Vec<u8>>);

pub(crate) struct ProposalInner {
    db: Arc<DbInner>,
    parent: Option<Arc<ProposalInner>>,
    /// The database commit sequence this proposal applies on top of.
    base_seq: u64,
    /// The batch, sorted, last write per key.
    changes: Changes,
    /// Nodes this proposal changed (`node: None` = no node at that key any more).
    nodes: Vec<NodeChange>,
    /// `nodes` by key, built on first use: a proposal committed straight away never needs it.
    node_index: OnceLock<HashMap<Key, usize, foldhash::fast::RandomState>>,
    /// The encoded undo record (each key's value before this batch), for history; empty for
    /// read-only views and when history is off.
    undo: Vec<u8>,
    root: Option<SubRoot>,
    count: u64,
    read_only: bool,
    committed: AtomicBool,
}

/// A batch of changes with its resulting root, not yet committed. Cheap to clone (a handle).
#[derive(Clone)]
pub struct Proposal {
    inner: Arc<ProposalInner>,
}

impl std::fmt::Debug for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proposal")
            .field("root", &self.root())
            .field("changes", &self.inner.changes.len())
            .field("read_only", &self.inner.read_only)
            .finish()
    }
}

impl Drop for ProposalInner {
    /// A committed proposal's nodes are freed by the next commit (see `DbInner::defer_drop`):
    /// they are shared with the dirty set, so dropping them here would touch every one of them
    /// again on the caller's thread. Its batch is freed here: the caller's thread usually
    /// allocated the keys and values, and frees by the allocating thread are the cheap ones.
    fn drop(&mut self) {
        if self.is_committed() && self.nodes.len() >= 256 {
            let nodes = std::mem::take(&mut self.nodes);
            let index = self.node_index.take();
            self.db.defer_drop(Box::new((nodes, index)));
        }
    }
}

impl ProposalInner {
    /// The node this proposal set at `key`: `None` if it did not touch `key`, `Some(None)` if it
    /// removed the node there.
    fn node(&self, key: &Key) -> Option<Option<&Arc<Node>>> {
        let index = self.node_index.get_or_init(|| {
            self.nodes
                .iter()
                .enumerate()
                .map(|(i, c)| (c.key.clone(), i))
                .collect()
        });
        index.get(key).map(|&i| self.nodes[i].node.as_ref())
    }

    fn is_committed(&self) -> bool {
        self.committed.load(Ordering::Acquire)
    }

    /// Whether reads through this proposal see the state it was built on.
    fn check_valid(&self, state: &State) -> Result<()> {
        if self.is_committed() {
            return Err(Error::AlreadyCommitted);
        }
        let mut current = self;
        loop {
            match &current.parent {
                None => break,
                Some(parent) if parent.is_committed() => break,
                Some(parent) => current = parent,
            }
        }
        if state.head.seq == current.base_seq {
            Ok(())
        } else {
            Err(Error::Invalid)
        }
    }

    /// The uncommitted proposals from this one down to the database, nearest first.
    fn chain(&self) -> Vec<&ProposalInner> {
        let mut out = vec![self];
        let mut current = self;
        while let Some(parent) = &current.parent {
            if parent.is_committed() {
                break;
            }
            out.push(parent);
            current = parent;
        }
        out
    }
}

/// Nodes as seen through a chain of proposals over the committed trie.
struct ChainNodes<'a> {
    chain: &'a [&'a ProposalInner],
    committed: CommittedNodes<'a>,
}

impl NodeSource for ChainNodes<'_> {
    fn load(&self, sub: &SubRoot) -> Result<Arc<Node>> {
        let (key, id) = (&sub.key, &sub.id);
        for p in self.chain {
            if let Some(node) = p.node(key) {
                return node
                    .cloned()
                    .ok_or_else(|| CorruptionError::MissingNode(key.clone()).into());
            }
            // A leaf created by this batch has no node record (see `trie::apply::finalize`).
            if key.is_whole_bytes() {
                match p.changes.get(key.as_bytes()) {
                    Some(Some(value)) => {
                        let leaf = Node::leaf(key.clone(), crate::hash::ValueDigest::of(value));
                        if leaf.id() != *id {
                            return Err(CorruptionError::NodeHashMismatch {
                                key: key.clone(),
                                expected: *id,
                                actual: leaf.id(),
                            }
                            .into());
                        }
                        return Ok(Arc::new(leaf));
                    }
                    Some(None) => return Err(CorruptionError::MissingNode(key.clone()).into()),
                    None => {}
                }
            }
        }
        self.committed.load(sub)
    }
}

/// Consistent read access to a proposal's state, for proof generation and verification.
pub(crate) struct Reader<'a> {
    proposal: &'a Proposal,
    chain: &'a [&'a ProposalInner],
    nodes: &'a dyn NodeSource,
}

impl Reader<'_> {
    /// The trie's nodes.
    pub(crate) fn nodes(&self) -> &dyn NodeSource {
        self.nodes
    }

    /// The root subtrie.
    pub(crate) fn root(&self) -> Option<&SubRoot> {
        self.proposal.inner.root.as_ref()
    }

    /// Token size in bits.
    pub(crate) fn token_bits(&self) -> usize {
        self.proposal.inner.db.token_bits()
    }

    /// The value at `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        read_value(&self.proposal.inner.db, self.chain, key)
    }

    /// Up to `limit` key-values in `[start, end]`.
    pub(crate) fn range(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.proposal.range_locked(start, end, limit)
    }
}

/// Where a new proposal sits.
struct Base<'a> {
    chain: Vec<&'a ProposalInner>,
    parent: Option<Arc<ProposalInner>>,
    root: Option<SubRoot>,
    count: u64,
    base_seq: u64,
}

impl Base<'_> {
    /// Directly on the committed head.
    fn head(state: &State) -> Self {
        Self {
            chain: Vec::new(),
            parent: None,
            root: state.head.root.clone(),
            count: state.head.count,
            base_seq: state.head.seq,
        }
    }
}

impl Db {
    /// Proposes `ops` on top of the committed state. Later ops on the same key win.
    pub fn propose(&self, ops: impl IntoIterator<Item = BatchOp>) -> Result<Proposal> {
        let state = self.inner.read()?;
        build(
            &self.inner,
            &state,
            Base::head(&state),
            Changes::from_ops(ops),
            false,
        )
    }

    /// A read handle on the current committed state.
    pub fn view(&self) -> Result<Proposal> {
        self.propose(std::iter::empty())
    }
}

fn build(
    db: &Arc<DbInner>,
    state: &State,
    base: Base<'_>,
    changes: Changes,
    read_only: bool,
) -> Result<Proposal> {
    let batch: Vec<Change<'_>> = changes
        .iter()
        .map(|(k, v)| Change {
            key: Key::from_bytes(k),
            value: v.as_deref(),
        })
        .collect();
    // Sized once up front (see `Applied::for_changes`).
    let mut applied = Applied::for_changes(batch.len());
    let keep_undo = !read_only && db.config.history_len > 0;
    let seen = SeenValues::new(&batch);
    let root = {
        let source = ChainNodes {
            chain: &base.chain,
            committed: CommittedNodes::new(db, state, keep_undo.then_some(&seen)),
        };
        apply(&source, db.token_bits(), base.root, &batch, &mut applied)?
    };
    // Which keys of the batch held a value before it, walked beside the (sorted) batch.
    let mut existed_keys = applied.existed;
    existed_keys.sort_unstable();
    let mut existed_iter = existed_keys.iter().peekable();
    let existed: Vec<bool> = changes
        .iter()
        .map(|(key, _)| {
            existed_iter
                .next_if(|k| k.as_bytes() == key.as_slice())
                .is_some()
        })
        .collect();
    debug_assert!(
        existed_iter.next().is_none(),
        "every existing key is in the batch"
    );
    let mut count = base.count;
    for ((_, value), existed) in changes.iter().zip(&existed) {
        match (value.is_some(), existed) {
            (true, false) => count += 1,
            (false, true) => count -= 1,
            _ => {}
        }
    }
    let undo = if !keep_undo {
        Vec::new()
    } else {
        // Previous values exist only for keys the trie held; new keys need no read.
        let befores = read_values(db, &base.chain, &changes, &existed, seen.into_values())?;
        encode_undo(
            changes
                .iter()
                .zip(&befores)
                .map(|((k, _), b)| (k.as_slice(), b.as_deref())),
        )
    };
    let nodes = applied.nodes;
    Ok(Proposal {
        inner: Arc::new(ProposalInner {
            db: db.clone(),
            parent: base.parent,
            base_seq: base.base_seq,
            changes,
            nodes,
            node_index: OnceLock::new(),
            undo,
            root,
            count,
            read_only,
            committed: AtomicBool::new(false),
        }),
    })
}

fn read_value(db: &DbInner, chain: &[&ProposalInner], key: &[u8]) -> Result<Option<Vec<u8>>> {
    match chain_value(chain, key) {
        Some(value) => Ok(value),
        None => Ok(db.store.get(Space::Values, key)?),
    }
}

/// The value at `key` as the newest proposal of `chain` that changed it left it (`Some(None)`:
/// deleted); `None` when none changed it.
fn chain_value(chain: &[&ProposalInner], key: &[u8]) -> Option<Option<Vec<u8>>> {
    chain
        .iter()
        .find_map(|p| p.changes.get(key))
        .map(|v| v.map(<[u8]>::to_vec))
}

/// The values before `changes` of the keys marked in `existed` (`None` for the others): from
/// the newest proposal of `chain` that changed the key, else the committed value: from `seen`
/// (by position in `changes`: what rebuilding lower subtries read of them) or from the store,
/// all the store's reads in one sorted batch.
fn read_values(
    db: &DbInner,
    chain: &[&ProposalInner],
    changes: &Changes,
    existed: &[bool],
    seen: Vec<(usize, Vec<u8>)>,
) -> Result<Vec<Option<Vec<u8>>>> {
    let mut befores: Vec<Option<Vec<u8>>> = vec![None; existed.len()];
    for (position, value) in seen {
        befores[position] = Some(value);
    }
    // Positions in `befores` and keys of the reads left for the store, in key order.
    let mut unread: Vec<(usize, &[u8])> = Vec::new();
    for (position, ((key, _), existed)) in changes.iter().zip(existed).enumerate() {
        if !existed {
            // A key the chain deleted may still have been seen at its committed value.
            befores[position] = None;
        } else if let Some(value) = chain_value(chain, key) {
            befores[position] = value;
        } else if befores[position].is_none() {
            unread.push((position, key.as_slice()));
        }
    }
    let keys: Vec<&[u8]> = unread.iter().map(|(_, k)| *k).collect();
    let values = db.store.get_sorted(Space::Values, &keys)?;
    for ((position, _), value) in unread.into_iter().zip(values) {
        befores[position] = value;
    }
    Ok(befores)
}

impl Proposal {
    /// The root hash after this batch.
    pub fn root(&self) -> Hash {
        root_hash(&self.inner.root)
    }

    /// The number of keys after this batch.
    pub fn key_count(&self) -> u64 {
        self.inner.count
    }

    /// Proposes `ops` on top of this proposal.
    pub fn propose(&self, ops: impl IntoIterator<Item = BatchOp>) -> Result<Proposal> {
        let db = &self.inner.db;
        let state = db.read()?;
        self.inner.check_valid(&state)?;
        // A plain view of the database (no changes) is transparent: proposals on it sit directly
        // on the database, so they can be committed.
        let transparent =
            self.inner.changes.is_empty() && self.inner.parent.is_none() && !self.inner.read_only;
        let base = if transparent {
            Base {
                chain: Vec::new(),
                parent: None,
                root: self.inner.root.clone(),
                count: self.inner.count,
                base_seq: self.inner.base_seq,
            }
        } else {
            Base {
                chain: self.inner.chain(),
                parent: Some(self.inner.clone()),
                root: self.inner.root.clone(),
                count: self.inner.count,
                base_seq: self.inner.base_seq + 1,
            }
        };
        build(db, &state, base, Changes::from_ops(ops), false)
    }

    /// The value at `key` in this proposal's state.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let state = self.inner.db.read()?;
        self.inner.check_valid(&state)?;
        read_value(&self.inner.db, &self.inner.chain(), key)
    }

    /// Up to `limit` key-values with `start <= key` and (if set) `key <= end`, in key order.
    pub fn range(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let state = self.inner.db.read()?;
        self.inner.check_valid(&state)?;
        self.range_locked(start, end, limit)
    }

    /// Calls `f` with every key in `[start, end]` (`end` inclusive, `None` = unbounded), in
    /// order, reading in chunks so memory stays bounded however many keys there are.
    pub fn for_each_key(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        mut f: impl FnMut(&[u8]),
    ) -> Result<()> {
        self.for_each_entry(start, end, |key, _| f(key))
    }

    /// Calls `f` with every key in `[start, end]` (`end = None`: to the end of the keyspace)
    /// and its value, in key order, reading in chunks.
    pub fn for_each_entry(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        mut f: impl FnMut(&[u8], &[u8]),
    ) -> Result<()> {
        const CHUNK: usize = 4096;
        let mut cursor = start.to_vec();
        loop {
            let chunk = self.range(&cursor, end, CHUNK)?;
            for (key, value) in &chunk {
                f(key, value);
            }
            match chunk.last() {
                Some((key, _)) if chunk.len() == CHUNK => {
                    cursor.clone_from(key);
                    cursor.push(0);
                }
                _ => return Ok(()),
            }
        }
    }

    /// [`Proposal::range`] under a held, validated read lock.
    fn range_locked(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if limit == 0 || end.is_some_and(|e| e < start) {
            return Ok(Vec::new());
        }
        let chain = self.inner.chain();
        // Overlay changes in range, nearest proposal wins.
        let mut overlay: BTreeMap<&[u8], Option<&[u8]>> = BTreeMap::new();
        for p in &chain {
            for (k, v) in p.changes.range(start, end) {
                overlay.entry(k.as_slice()).or_insert(v.as_deref());
            }
        }
        let mut out = Vec::new();
        let mut overlay = overlay.into_iter().peekable();
        let store = self.inner.db.store.as_ref();
        let mut cursor = start.to_vec();
        let mut store_done = false;
        let mut buffer: std::collections::VecDeque<(Vec<u8>, Vec<u8>)> = Default::default();
        // One scan for the whole answer when nothing in the overlay deletes (each scan opens an
        // iterator and seeks: 13% of a serving process's CPU when a 2048-key answer took eight).
        let chunk_len = limit.clamp(256, 4096);
        while out.len() < limit {
            if buffer.is_empty() && !store_done {
                let chunk = store.scan(Space::Values, &cursor, end, chunk_len)?;
                store_done = chunk.len() < chunk_len;
                if let Some((last, _)) = chunk.last() {
                    cursor = last.clone();
                    cursor.push(0);
                }
                buffer.extend(chunk);
            }
            let next_store = buffer.front().map(|(k, _)| k.as_slice());
            let next_overlay = overlay.peek().map(|(k, _)| *k);
            match (next_store, next_overlay) {
                (None, None) => break,
                (Some(s), o) if o.is_none_or(|o| s < o) => {
                    if let Some(item) = buffer.pop_front() {
                        out.push(item);
                    }
                }
                (s, Some(o)) => {
                    if s == Some(o) {
                        buffer.pop_front();
                    }
                    if let Some((k, Some(v))) = overlay.next() {
                        out.push((k.to_vec(), v.to_vec()));
                    }
                }
                (Some(_), None) => unreachable!("covered by the arm above"),
            }
        }
        Ok(out)
    }

    /// Runs `f` with a consistent reader of this proposal's state (under the database read lock).
    pub(crate) fn with_reader<T>(&self, f: impl FnOnce(&Reader<'_>) -> Result<T>) -> Result<T> {
        let state = self.inner.db.read()?;
        self.with_reader_locked(&state, f)
    }

    /// [`Proposal::with_reader`] under a read lock the caller already holds (so a view can be
    /// built and read under one lock, without a commit slipping in between).
    pub(crate) fn with_reader_locked<T>(
        &self,
        state: &State,
        f: impl FnOnce(&Reader<'_>) -> Result<T>,
    ) -> Result<T> {
        let db = &self.inner.db;
        self.inner.check_valid(state)?;
        let chain = self.inner.chain();
        let nodes = ChainNodes {
            chain: &chain,
            committed: CommittedNodes::new(db, state, None),
        };
        f(&Reader {
            proposal: self,
            chain: &chain,
            nodes: &nodes,
        })
    }
}
