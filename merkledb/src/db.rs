//! The database: committed state, commit protocol, write-back of inner nodes, recovery.
//!
//! # Commit protocol
//!
//! A commit is **one** atomic store batch holding: the value puts and deletes, the new [`Head`]
//! (sequence number, key count, root) and the commit's history records. Inner nodes are *not* in
//! it: they are derived data, kept in an in-memory dirty map and written to the nodes space
//! lazily (when the map exceeds its budget, and on close).
//!
//! # Invariants
//!
//! * The values space and the head always describe the same committed state (one batch writes
//!   both).
//! * When the `clean` marker is `1`, the nodes space holds exactly the inner nodes of the trie
//!   of the values space whose height makes them stored (`layout::is_stored`: at branch factor
//!   16, height 3 and up), and nothing else. Leaves are never stored as nodes: a leaf is its
//!   value record; lower inner nodes are rebuilt from the values under their key.
//! * Every child record (and the head's root) carries the child's height, so a reader knows
//!   where a node lives (a stored record, the values, or its value record for a leaf) before
//!   reading it.
//! * While a database is open the marker is `0`. Opening a database whose marker is not `1`
//!   (a crash) discards the nodes space and rebuilds it from the values, then checks that the
//!   rebuilt root equals the head's root.
//!
//! So a process killed at any moment reopens at the state of the last completed commit batch,
//! never a mix, with no manual repair.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use crate::{
    config::Config,
    dirty::{DirtyEntry, DirtyNodes},
    error::{CorruptionError, Error, Result, StoreError},
    hash::Hash,
    key::{BranchFactor, Key},
    layout::{
        FORMAT_VERSION, HISTORY_INDEX, Head, META_BRANCH_FACTOR, META_CLEAN, META_FORMAT,
        META_HEAD, app_meta_key, write_app_meta,
    },
    node::{Node, SubRoot},
    store::{Batch, Durability, MemoryStore, ScanIter, Space, Store},
    trie::{Applied, Change, NodeSource, apply},
};

mod nodes;

pub(crate) use nodes::{CommittedNodes, SeenValues};

/// One retained commit: its sequence number and the roots before and after it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HistoryEntry {
    pub seq: u64,
    pub before: Hash,
    pub after: Hash,
}

/// What [`DbInner::absorb_nodes`] replaced in the dirty set: for each change that set an entry,
/// its position in the change list and the entry before.
pub(crate) type Displaced = Vec<(usize, Option<DirtyEntry>)>;

/// The mutable state, behind the database lock.
pub(crate) struct State {
    /// The committed head.
    pub head: Head,
    /// Inner nodes changed since the last flush: `Some` = write this node, `None` = delete the
    /// stored record. Consulted before the cache and the store.
    pub dirty: DirtyNodes,
    /// The write-back running on its own thread, if any: the entries it writes, consulted
    /// after the dirty set (see [`DbInner::start_write_back`]).
    pub writing: Option<nodes::WriteBack>,
    /// Retained commits, oldest first.
    pub history: VecDeque<HistoryEntry>,
    /// Set by `close`.
    pub closed: bool,
}

/// Shared internals of a [`Db`].
pub(crate) struct DbInner {
    /// Shared with the write-back thread.
    pub store: Arc<dyn Store>,
    pub config: Config,
    pub state: RwLock<State>,
    /// Clean nodes read from the store, bounded by [`node_capacity`].
    pub cache: quick_cache::sync::Cache<Key, Arc<Node>>,
    /// Memory to free later (see [`DbInner::defer_drop`]).
    garbage: Mutex<Vec<Garbage>>,
    /// The last undo fold a change proof needed (see `Db::undo_between_cached`).
    pub(crate) undo_cache: Mutex<Option<UndoFold>>,
}

/// For every key changed by commits `from + 1 ..= to`, its value as of commit `from`. The
/// undo records of a commit never change while retained, so a fold stays true for its range.
pub(crate) struct UndoFold {
    pub(crate) from: u64,
    pub(crate) to: u64,
    pub(crate) before: Arc<Undo>,
}

/// Keys and their values before a range of commits (`None`: the key did not exist).
pub(crate) type Undo = std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Something large to free off the caller's path.
pub(crate) type Garbage = Box<dyn Send>;

/// Above this many deferred items, [`DbInner::defer_drop`] frees them at once.
const MAX_GARBAGE: usize = 16;

/// A Merkle key-value database. Cheap to clone (a handle).
///
/// ```
/// use arbor_merkledb::{Config, Db, Hash};
/// let db = Db::open_memory(Config::default()).unwrap();
/// assert_eq!(db.root().unwrap(), Hash::EMPTY_ROOT);
/// let proposal = db.propose(vec![(b"key".to_vec(), Some(b"value".to_vec()))]).unwrap();
/// let root = proposal.root();
/// proposal.commit().unwrap();
/// assert_eq!(db.root().unwrap(), root);
/// assert_eq!(db.get(b"key").unwrap(), Some(b"value".to_vec()));
/// ```
#[derive(Clone)]
pub struct Db {
    pub(crate) inner: Arc<DbInner>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("branch_factor", &self.inner.config.branch_factor)
            .finish()
    }
}

impl Db {
    /// Opens (creating if needed) a RocksDB-backed database in directory `path`.
    #[cfg(feature = "rocksdb")]
    pub fn open(path: impl AsRef<std::path::Path>, config: Config) -> Result<Self> {
        let store = crate::store::RocksStore::open(path.as_ref(), &config.rocks)?;
        Self::open_with_store(Box::new(store), config)
    }

    /// A new, empty in-memory database.
    pub fn open_memory(config: Config) -> Result<Self> {
        Self::open_with_store(Box::new(MemoryStore::new()), config)
    }

    /// Opens a database on any [`Store`].
    pub fn open_with_store(store: Box<dyn Store>, config: Config) -> Result<Self> {
        let children = config.branch_factor.children();
        match store.get(Space::Meta, META_BRANCH_FACTOR)? {
            Some(bytes) => {
                let stored = <[u8; 4]>::try_from(bytes.as_slice())
                    .map(u32::from_be_bytes)
                    .map_err(|_| CorruptionError::Malformed {
                        what: "branch factor",
                        key: META_BRANCH_FACTOR.to_vec(),
                    })?;
                if stored != children {
                    return Err(Error::BranchFactorMismatch {
                        stored,
                        requested: children,
                    });
                }
            }
            None => {
                let mut batch = Batch::default();
                batch.put(
                    Space::Meta,
                    META_FORMAT.to_vec(),
                    FORMAT_VERSION.to_be_bytes().to_vec(),
                );
                batch.put(
                    Space::Meta,
                    META_BRANCH_FACTOR.to_vec(),
                    children.to_be_bytes().to_vec(),
                );
                batch.put(Space::Meta, META_CLEAN.to_vec(), vec![1]);
                store.write(batch, Durability::Machine)?;
            }
        }
        let head = match store.get(Space::Meta, META_HEAD)? {
            Some(bytes) => Head::decode(&bytes)?,
            None => Head::default(),
        };
        let clean = store.get(Space::Meta, META_CLEAN)?.as_deref() == Some(&[1]);
        // Version 1 (no record) stored every inner node without heights: its nodes space is
        // rebuilt in the current layout, as after a crash.
        let migrate = match store.get(Space::Meta, META_FORMAT)? {
            None => true,
            Some(bytes) => {
                let found = <[u8; 4]>::try_from(bytes.as_slice())
                    .map(u32::from_be_bytes)
                    .map_err(|_| CorruptionError::Malformed {
                        what: "layout version",
                        key: META_FORMAT.to_vec(),
                    })?;
                if found != FORMAT_VERSION {
                    return Err(Error::UnsupportedFormat {
                        found,
                        supported: FORMAT_VERSION,
                    });
                }
                false
            }
        };
        let history = load_history(store.as_ref())?;
        let cache = quick_cache::sync::Cache::new(node_capacity(&config, 0));
        let inner = DbInner {
            store: Arc::from(store),
            config,
            state: RwLock::new(State {
                head,
                dirty: DirtyNodes::default(),
                writing: None,
                history,
                closed: false,
            }),
            cache,
            garbage: Mutex::new(Vec::new()),
            undo_cache: Mutex::new(None),
        };
        if migrate {
            tracing::warn!(
                "database in layout version 1; rebuilding its inner nodes in version {FORMAT_VERSION}"
            );
            inner.rebuild()?;
        } else if !clean {
            tracing::warn!("database was not closed cleanly; rebuilding inner nodes from values");
            inner.rebuild()?;
        }
        let mut batch = Batch::default();
        batch.put(Space::Meta, META_CLEAN.to_vec(), vec![0]);
        inner.store.write(batch, Durability::Machine)?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The branch factor.
    pub fn branch_factor(&self) -> BranchFactor {
        self.inner.config.branch_factor
    }

    /// The current root hash ([`Hash::EMPTY_ROOT`] when empty).
    pub fn root(&self) -> Result<Hash> {
        Ok(root_hash(&self.inner.read()?.head.root))
    }

    /// The number of keys.
    pub fn key_count(&self) -> Result<u64> {
        Ok(self.inner.read()?.head.count)
    }

    /// The number of commits since creation.
    pub fn commit_seq(&self) -> Result<u64> {
        Ok(self.inner.read()?.head.seq)
    }

    /// The committed value at `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let _state = self.inner.read()?;
        Ok(self.inner.store.get(Space::Values, key)?)
    }

    /// Application metadata record `key`, as last written by [`Db::put_app_meta`] or
    /// [`Proposal::commit_with_meta`](crate::Proposal::commit_with_meta). Kept apart from the
    /// trie: it does not affect the root.
    pub fn app_meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let _state = self.inner.read()?;
        Ok(self.inner.store.get(Space::Meta, &app_meta_key(key))?)
    }

    /// Writes (or, with `None`, deletes) application metadata record `key`, durably and on its
    /// own. Use [`Proposal::commit_with_meta`](crate::Proposal::commit_with_meta) to write it
    /// atomically with trie contents.
    pub fn put_app_meta(&self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        let _state = self.inner.write()?;
        let mut batch = Batch::default();
        write_app_meta(&mut batch, &[(key, value)]);
        Ok(self.inner.store.write(batch, Durability::Process)?)
    }

    /// Empties the database in one atomic write, with the application metadata records `meta`
    /// (as [`Proposal::commit_with_meta`](crate::Proposal::commit_with_meta) takes them): every
    /// key, every inner node and the retained history go, and the head becomes the empty trie.
    /// The commit sequence still counts up, so every proposal and view built before is invalid.
    ///
    /// Much cheaper than deleting every key through a commit (RocksDB writes one range deletion
    /// per space): a replica about to fetch a state that shares little with its own uses it to
    /// write the new state into an empty trie. After a crash the database is either as before or
    /// empty with `meta` written.
    pub fn reset_with_meta(&self, meta: &[(&[u8], Option<&[u8]>)]) -> Result<()> {
        let mut state = self.inner.write()?;
        let head = Head {
            seq: state.head.seq + 1,
            count: 0,
            root: None,
        };
        // A write-back in flight must land before the clear (it would write old nodes after
        // it); whether it succeeded does not matter, its nodes go with the old state.
        let _ = self.inner.land_write_back(&mut state, true, false);
        let mut batch = Batch::with_capacity(meta.len() + 1);
        batch.put(Space::Meta, META_HEAD.to_vec(), head.encode());
        write_app_meta(&mut batch, meta);
        self.inner.store.clear_and_write(
            &[Space::Values, Space::Nodes, Space::History],
            batch,
            Durability::Process,
        )?;
        // The stored state is empty; the memory describing the old one goes with it.
        state.head = head;
        state.dirty.clear();
        state.history.clear();
        self.inner.cache.clear();
        self.inner.fit_cache(&state);
        *self
            .inner
            .undo_cache
            .lock()
            .map_err(|_| StoreError::Poisoned)? = None;
        Ok(())
    }

    /// The roots proofs can be served at: the retained history, oldest first, ending with the
    /// current root.
    pub fn retained_roots(&self) -> Result<Vec<Hash>> {
        let state = self.inner.read()?;
        let mut roots: Vec<Hash> = state
            .history
            .front()
            .map(|e| e.before)
            .into_iter()
            .collect();
        roots.extend(state.history.iter().map(|e| e.after));
        if roots.is_empty() {
            roots.push(root_hash(&state.head.root));
        }
        Ok(roots)
    }

    /// Writes every dirty inner node to the store, freeing the dirty set. It adds no durability:
    /// the nodes space outlives a crash only through [`Db::close`] (a crash rebuilds it).
    pub fn flush(&self) -> Result<()> {
        let mut state = self.inner.write()?;
        self.inner.flush(&mut state)
    }

    /// Flushes and marks the database cleanly closed. Further use fails with [`Error::Closed`].
    /// Dropping the last handle closes too, ignoring errors.
    pub fn close(&self) -> Result<()> {
        let mut state = self.inner.write()?;
        self.inner.close(&mut state)
    }
}

/// The clean cache's capacity while the dirty set holds `dirty` entries: its own bound plus
/// the part of the dirty budget the set leaves unused, so both together stay within
/// `node_cache_nodes + dirty_node_budget`.
pub(crate) fn node_capacity(config: &Config, dirty: usize) -> usize {
    config.node_cache_nodes.max(16) + config.dirty_node_budget.saturating_sub(dirty)
}

/// The root hash of a subtrie reference.
pub(crate) fn root_hash(root: &Option<SubRoot>) -> Hash {
    root.as_ref().map_or(Hash::EMPTY_ROOT, |r| r.id)
}

fn load_history(store: &dyn Store) -> Result<VecDeque<HistoryEntry>> {
    let mut out = VecDeque::new();
    for item in ScanIter::new(
        store,
        Space::History,
        &[HISTORY_INDEX],
        Some(&[
            HISTORY_INDEX,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
        ]),
    ) {
        let (key, value) = item?;
        let malformed = || CorruptionError::Malformed {
            what: "history index",
            key: key.clone(),
        };
        let seq = <[u8; 8]>::try_from(&key[1..])
            .map(u64::from_be_bytes)
            .map_err(|_| malformed())?;
        if value.len() != 64 {
            return Err(malformed().into());
        }
        let before = Hash::from_slice(&value[..32]).ok_or_else(malformed)?;
        let after = Hash::from_slice(&value[32..]).ok_or_else(malformed)?;
        out.push_back(HistoryEntry { seq, before, after });
    }
    Ok(out)
}

impl DbInner {
    pub(crate) fn read(&self) -> Result<RwLockReadGuard<'_, State>> {
        let guard = self.state.read().map_err(|_| StoreError::Poisoned)?;
        if guard.closed {
            return Err(Error::Closed);
        }
        Ok(guard)
    }

    pub(crate) fn write(&self) -> Result<RwLockWriteGuard<'_, State>> {
        let guard = self.state.write().map_err(|_| StoreError::Poisoned)?;
        if guard.closed {
            return Err(Error::Closed);
        }
        Ok(guard)
    }

    pub(crate) fn token_bits(&self) -> usize {
        self.config.branch_factor.token_bits()
    }

    fn close(&self, state: &mut State) -> Result<()> {
        // Nothing reads the clean cache after close: its memory goes before the write-back's.
        self.cache.clear();
        self.write_back_all(state, false)?;
        // The write-backs skipped the write-ahead log (`Durability::Unlogged`): the nodes space
        // is in files only after this flush, so `clean` may be set only after it. It also keeps
        // the log short, so the next open replays nothing of this session.
        self.store.compact_log()?;
        let mut batch = Batch::default();
        batch.put(Space::Meta, META_CLEAN.to_vec(), vec![1]);
        self.store.write(batch, Durability::Machine)?;
        state.closed = true;
        Ok(())
    }

    /// Rebuilds the nodes space from the values space (after an unclean shutdown, or to migrate
    /// an older layout) and checks the result against the committed head; writes the head (with
    /// the root's height) and the layout version.
    fn rebuild(&self) -> Result<()> {
        let mut state = self.state.write().map_err(|_| StoreError::Poisoned)?;
        self.store.clear(Space::Nodes)?;
        self.cache.clear();
        state.dirty.clear();
        let expected = state.head.clone();
        let mut root: Option<SubRoot> = None;
        let mut count = 0u64;
        let mut iter = ScanIter::new(self.store.as_ref(), Space::Values, &[], None);
        // The previous chunk's nodes: keys come in order, so the next chunk reaches only the
        // trie's right edge, every node of which holds that chunk's last key (so it changed).
        let mut edge = HashMap::<Key, Arc<Node>>::new();
        loop {
            let mut chunk: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(65536);
            for item in iter.by_ref() {
                chunk.push(item?);
                if chunk.len() == 65536 {
                    break;
                }
            }
            if chunk.is_empty() {
                break;
            }
            count += chunk.len() as u64;
            let changes: Vec<Change<'_>> = chunk
                .iter()
                .map(|(k, v)| Change {
                    key: Key::from_bytes(k),
                    value: Some(v.as_slice()),
                })
                .collect();
            let mut applied = Applied::default();
            root = {
                let source = EdgeNodes {
                    edge: &edge,
                    store: self.store.as_ref(),
                };
                apply(&source, self.token_bits(), root, &changes, &mut applied)?
            };
            drop(self.absorb_nodes(&mut state.dirty, &applied.nodes, false));
            edge = applied
                .nodes
                .into_iter()
                .filter_map(|c| c.node.map(|n| (c.key, n)))
                .collect();
            if state.dirty.len() > self.config.dirty_node_budget {
                self.flush(&mut state)?;
            }
        }
        self.flush(&mut state)?;
        let actual = root_hash(&root);
        if actual != root_hash(&expected.root) || count != expected.count {
            return Err(CorruptionError::RootMismatch {
                expected: root_hash(&expected.root),
                actual,
            }
            .into());
        }
        state.head.root = root;
        let mut batch = Batch::default();
        batch.put(Space::Meta, META_HEAD.to_vec(), state.head.encode());
        batch.put(
            Space::Meta,
            META_FORMAT.to_vec(),
            FORMAT_VERSION.to_be_bytes().to_vec(),
        );
        self.store.write(batch, Durability::Machine)?;
        tracing::info!(keys = count, root = %actual, "rebuilt inner nodes");
        Ok(())
    }
}

/// The nodes a rebuild reads: the previous chunk's, and leaves from the values space.
struct EdgeNodes<'a> {
    edge: &'a HashMap<Key, Arc<Node>>,
    store: &'a dyn Store,
}

impl NodeSource for EdgeNodes<'_> {
    fn load(&self, sub: &SubRoot) -> Result<Arc<Node>> {
        if let Some(node) = self.edge.get(&sub.key) {
            return Ok(node.clone());
        }
        Ok(Arc::new(nodes::read_leaf(self.store, sub)?))
    }
}

impl Drop for DbInner {
    fn drop(&mut self) {
        if let Ok(mut state) = self.state.write() {
            if !state.closed {
                if let Err(e) = self.close(&mut state) {
                    tracing::error!(error = %e, "closing database on drop failed");
                }
            }
        }
    }
}
