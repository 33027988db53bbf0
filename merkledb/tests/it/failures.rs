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

/// A commit over the dirty-node budget writes some nodes back after its own batch. When that
/// write fails, the commit stands (its batch is durable), the nodes stay dirty, and nothing is
/// lost: reads, later commits and a clean reopen all see the committed trie.
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
    let ops = batch(&mut rng, &model, 3000);
    // The commit's own batch passes; the write-back after it fails.
    allowed.store(1, Ordering::SeqCst);
    failing.store(true, Ordering::SeqCst);
    let result = db.propose(ops.clone()).expect("propose").commit();
    failing.store(false, Ordering::SeqCst);
    assert!(result.is_err(), "the write-back failure is reported");
    apply(&mut model, &ops);
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
