//! A store write that fails leaves the database as it was: the in-memory trie state the commit
//! had started to update is restored, and the same proposal can be committed later.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use arbor_merkledb::{
    Config, Db, StoreError,
    store::{Batch, Durability, MemoryStore, Record, Space, Store},
    test_utils::{SeedReporter, SeededRng, reference_root},
};

/// A memory store whose writes fail while `failing` is set, once `allowed` more writes have
/// passed.
struct FlakyStore {
    inner: Arc<MemoryStore>,
    failing: Arc<AtomicBool>,
    allowed: Arc<AtomicUsize>,
}

impl Store for FlakyStore {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(space, key)
    }

    fn scan(
        &self,
        space: Space,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        self.inner.scan(space, start, end, limit)
    }

    fn write(&self, batch: Batch<'_>, durability: Durability) -> Result<(), StoreError> {
        self.fail()?;
        self.inner.write(batch, durability)
    }

    fn clear_and_write(
        &self,
        clear: &[Space],
        batch: Batch<'_>,
        durability: Durability,
    ) -> Result<(), StoreError> {
        self.fail()?;
        self.inner.clear_and_write(clear, batch, durability)
    }
}

impl FlakyStore {
    /// An injected failure, when one is due.
    fn fail(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst)
            && self
                .allowed
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_err()
        {
            return Err(StoreError::MissingSpace("injected failure"));
        }
        Ok(())
    }
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn batch(rng: &mut SeededRng, model: &Model, n: usize) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let existing: Vec<&Vec<u8>> = model.keys().collect();
    (0..n)
        .map(|i| match (i % 4, existing.is_empty()) {
            // Deletes and overwrites of existing keys rewrite and remove inner nodes.
            (0, false) => (
                existing[rng.below(existing.len() as u64) as usize].clone(),
                None,
            ),
            (1, false) => (
                existing[rng.below(existing.len() as u64) as usize].clone(),
                Some(rng.bytes(8)),
            ),
            _ => (rng.bytes_between(1, 40), Some(rng.bytes_between(0, 40))),
        })
        .collect()
}

fn apply(model: &mut Model, ops: &[(Vec<u8>, Option<Vec<u8>>)]) {
    for (k, v) in ops {
        match v {
            Some(v) => model.insert(k.clone(), v.clone()),
            None => model.remove(k),
        };
    }
}

/// Commits a random batch of 3000 operations to `db` and to `model`.
fn commit_random_batch(db: &Db, rng: &mut SeededRng, model: &mut Model) {
    let ops = batch(rng, model, 3000);
    db.propose(ops.clone())
        .expect("propose")
        .commit()
        .expect("commit");
    apply(model, &ops);
}

#[test]
fn failed_commit_write_restores_the_in_memory_trie() {
    let seed = SeededRng::seed_from_env(7);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let failing = Arc::new(AtomicBool::new(false));
    let store = FlakyStore {
        inner: Arc::new(MemoryStore::new()),
        failing: failing.clone(),
        allowed: Arc::new(AtomicUsize::new(0)),
    };
    let config = Config::default();
    let bf = config.branch_factor;
    let db = Db::open_with_store(Box::new(store), config).expect("open");
    let mut model = Model::new();
    for _ in 0..4 {
        commit_random_batch(&db, &mut rng, &mut model);
    }
    let root = db.root().expect("root");
    assert_eq!(root, reference_root(&model, bf));

    let ops = batch(&mut rng, &model, 3000);
    let failed = db.propose(ops.clone()).expect("propose");
    failing.store(true, Ordering::SeqCst);
    assert!(failed.commit().is_err(), "the write fails");
    failing.store(false, Ordering::SeqCst);
    assert_eq!(db.root().expect("root"), root, "nothing was committed");

    // Another batch proposed on the unchanged state reads the restored nodes.
    let other = batch(&mut rng, &model, 3000);
    let mut other_model = model.clone();
    apply(&mut other_model, &other);
    let proposal = db.propose(other).expect("propose");
    assert_eq!(proposal.root(), reference_root(&other_model, bf));

    // The failed proposal is still valid and commits once the store works again.
    failed.commit().expect("commit after the failure");
    apply(&mut model, &ops);
    assert_eq!(db.root().expect("root"), reference_root(&model, bf));
    commit_random_batch(&db, &mut rng, &mut model);
    assert_eq!(db.root().expect("root"), reference_root(&model, bf));
}

/// A commit over the dirty-node budget starts writing some nodes back, on a thread of its own,
/// after its own batch. When that write fails, the commit stands (its batch is durable), the
/// failure is reported by the call that lands the write-back (here a flush), the nodes stay
/// dirty, and nothing is lost: reads, later commits and a clean reopen all see the committed
/// trie.
#[test]
fn failed_write_back_keeps_the_nodes_dirty() {
    let seed = SeededRng::seed_from_env(9);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let failing = Arc::new(AtomicBool::new(false));
    let allowed = Arc::new(AtomicUsize::new(0));
    let inner = Arc::new(MemoryStore::new());
    let store = FlakyStore {
        inner: inner.clone(),
        failing: failing.clone(),
        allowed: allowed.clone(),
    };
    let config = Config::default().with_dirty_node_budget(64);
    let bf = config.branch_factor;
    let db = Db::open_with_store(Box::new(store), config.clone()).expect("open");
    let mut model = Model::new();
    for _ in 0..4 {
        commit_random_batch(&db, &mut rng, &mut model);
    }
    // No write-back of those commits may still be running when failures start.
    db.flush().expect("flush");
    let ops = batch(&mut rng, &model, 3000);
    // The commit's own batch passes; the write-back it starts fails.
    allowed.store(1, Ordering::SeqCst);
    failing.store(true, Ordering::SeqCst);
    db.propose(ops.clone())
        .expect("propose")
        .commit()
        .expect("the commit's own batch is written");
    apply(&mut model, &ops);
    let landed = db.flush();
    failing.store(false, Ordering::SeqCst);
    assert!(landed.is_err(), "the write-back failure is reported");
    assert_eq!(
        db.root().expect("root"),
        reference_root(&model, bf),
        "the commit stands"
    );
    for (key, value) in model.iter().take(50) {
        assert_eq!(db.get(key).expect("get").as_ref(), Some(value));
    }
    commit_random_batch(&db, &mut rng, &mut model);
    assert_eq!(db.root().expect("root"), reference_root(&model, bf));
    db.close().expect("close");
    let store = FlakyStore {
        inner,
        failing,
        allowed,
    };
    let db = Db::open_with_store(Box::new(store), config).expect("reopen");
    assert_eq!(db.root().expect("root"), reference_root(&model, bf));
}

/// A reset whose write fails changes nothing: the trie, its nodes and its history stay usable.
#[test]
fn failed_reset_leaves_the_database_as_it_was() {
    let seed = SeededRng::seed_from_env(11);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let failing = Arc::new(AtomicBool::new(false));
    let store = FlakyStore {
        inner: Arc::new(MemoryStore::new()),
        failing: failing.clone(),
        allowed: Arc::new(AtomicUsize::new(0)),
    };
    let config = Config::default()
        .with_dirty_node_budget(64)
        .with_history_len(4);
    let bf = config.branch_factor;
    let db = Db::open_with_store(Box::new(store), config).expect("open");
    let mut model = Model::new();
    for _ in 0..3 {
        commit_random_batch(&db, &mut rng, &mut model);
    }
    let roots = db.retained_roots().expect("roots");
    failing.store(true, Ordering::SeqCst);
    assert!(db.reset_with_meta(&[(b"m", Some(b"1"))]).is_err());
    failing.store(false, Ordering::SeqCst);
    assert_eq!(db.root().expect("root"), reference_root(&model, bf));
    assert_eq!(db.retained_roots().expect("roots"), roots);
    assert!(db.view_at(roots[0]).is_ok(), "history is still there");
    assert_eq!(db.app_meta(b"m").expect("meta"), None);
    commit_random_batch(&db, &mut rng, &mut model);
    assert_eq!(db.root().expect("root"), reference_root(&model, bf));
}

/// A small state keeps its lower inner nodes (no stored record) in the dirty set, a large one in
/// the clean cache (`DbInner::lower_nodes_fit`, by the key count against half the dirty
/// budget). A state that grows past that size and shrinks back moves them between the two and
/// never reads a stale copy: roots stay the reference's, commit after commit and after a reopen.
#[test]
fn lower_nodes_move_between_dirty_set_and_cache_as_the_state_grows_and_shrinks() {
    let seed = SeededRng::seed_from_env(11);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let inner = Arc::new(MemoryStore::new());
    let open = |inner: &Arc<MemoryStore>| {
        let store = FlakyStore {
            inner: inner.clone(),
            failing: Arc::new(AtomicBool::new(false)),
            allowed: Arc::new(AtomicUsize::new(0)),
        };
        // Half the dirty budget (32) holds the lower nodes of about 480 keys.
        let config = Config::default()
            .with_dirty_node_budget(64)
            .with_node_cache_nodes(256);
        Db::open_with_store(Box::new(store), config).expect("open")
    };
    let db = open(&inner);
    let bf = Config::default().branch_factor;
    let mut model = Model::new();
    // Grow to about 1,500 keys in small commits, then shrink below 200, then grow again.
    let mut sizes = Vec::new();
    for round in 0..30 {
        let ops = if (10..18).contains(&round) {
            let existing: Vec<Vec<u8>> = model.keys().cloned().collect();
            existing
                .into_iter()
                .filter(|_| rng.below(4) != 0)
                .map(|k| (k, None))
                .take(400)
                .collect()
        } else {
            batch(&mut rng, &model, 300)
        };
        db.propose(ops.clone())
            .expect("propose")
            .commit()
            .expect("commit");
        apply(&mut model, &ops);
        assert_eq!(
            db.root().expect("root"),
            reference_root(&model, bf),
            "round {round}"
        );
        sizes.push(model.len());
    }
    let (largest, smallest) = (
        sizes.iter().max().copied().unwrap_or(0),
        sizes[10..18].iter().min().copied().unwrap_or(0),
    );
    assert!(
        largest > 1000 && smallest < 300,
        "grew and shrank: {sizes:?}"
    );
    let root = db.root().expect("root");
    db.close().expect("close");
    let db = open(&inner);
    assert_eq!(db.root().expect("root"), root);
    assert_eq!(root, reference_root(&model, bf));
}

/// A store whose unlogged writes (the nodes space's write-backs) wait at a gate until the test
/// opens it.
struct GatedStore {
    inner: Arc<MemoryStore>,
    gate: Arc<Gate>,
}

#[derive(Default)]
struct Gate {
    /// (open, writes waiting)
    state: std::sync::Mutex<(bool, usize)>,
    changed: std::sync::Condvar,
}

impl Gate {
    fn pass(&self) {
        let mut state = self.state.lock().expect("gate");
        state.1 += 1;
        self.changed.notify_all();
        while !state.0 {
            state = self.changed.wait(state).expect("gate");
        }
        state.1 -= 1;
    }

    fn open(&self) {
        self.state.lock().expect("gate").0 = true;
        self.changed.notify_all();
    }

    /// Waits (at most 10 s) until a write waits at the gate.
    fn await_writer(&self) -> bool {
        let state = self.state.lock().expect("gate");
        let (state, _) = self
            .changed
            .wait_timeout_while(state, std::time::Duration::from_secs(10), |s| s.1 == 0)
            .expect("gate");
        state.1 > 0
    }
}

/// Opens the gate when dropped.
struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

impl Store for GatedStore {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(space, key)
    }

    fn scan(
        &self,
        space: Space,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        self.inner.scan(space, start, end, limit)
    }

    fn write(&self, batch: Batch<'_>, durability: Durability) -> Result<(), StoreError> {
        if durability == Durability::Unlogged {
            self.gate.pass();
        }
        self.inner.write(batch, durability)
    }

    fn clear_and_write(
        &self,
        clear: &[Space],
        batch: Batch<'_>,
        durability: Durability,
    ) -> Result<(), StoreError> {
        self.inner.clear_and_write(clear, batch, durability)
    }
}

/// While a write-back runs on its own thread, the nodes it writes are neither in the dirty set
/// nor yet in the store: reads find them in flight. The write-back is held at a gate while the
/// test reads and proposes on top of it (every stored node below the root is in flight: the
/// dirty budget is 4); then it lands, a commit and a clean reopen see the same trie.
#[test]
fn reads_find_the_nodes_of_a_write_back_in_flight() {
    let seed = SeededRng::seed_from_env(13);
    let _report = SeedReporter { seed };
    let mut rng = SeededRng::new(seed);
    let inner = Arc::new(MemoryStore::new());
    let gate = Arc::new(Gate::default());
    let store = GatedStore {
        inner: inner.clone(),
        gate: gate.clone(),
    };
    let config = Config::default().with_dirty_node_budget(4);
    let bf = config.branch_factor;
    let db = Db::open_with_store(Box::new(store), config.clone()).expect("open");
    // Dropped before `db` when an assertion fails: the close waits for the write-back.
    let _open_on_exit = OpenOnDrop(gate.clone());
    let mut model = Model::new();
    commit_random_batch(&db, &mut rng, &mut model);
    assert!(gate.await_writer(), "the commit started a write-back");

    assert_eq!(db.root().expect("root"), reference_root(&model, bf));
    for (key, value) in model.iter().step_by(37) {
        assert_eq!(db.get(key).expect("get").as_ref(), Some(value));
    }
    let ops = batch(&mut rng, &model, 3000);
    let proposal = db.propose(ops.clone()).expect("propose on nodes in flight");
    apply(&mut model, &ops);
    assert_eq!(proposal.root(), reference_root(&model, bf));

    gate.open();
    proposal.commit().expect("commit");
    assert_eq!(db.root().expect("root"), reference_root(&model, bf));
    commit_random_batch(&db, &mut rng, &mut model);
    db.close().expect("close");
    let store = GatedStore { inner, gate };
    let db = Db::open_with_store(Box::new(store), config).expect("reopen");
    assert_eq!(db.root().expect("root"), reference_root(&model, bf));
}
