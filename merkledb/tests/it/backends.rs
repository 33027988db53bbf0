//! Helpers to run the same test against every storage backend.

use arbor_merkledb::{Config, Db};
use tempfile::TempDir;

/// A database under test plus whatever keeps its storage alive.
pub(crate) struct Harness {
    pub(crate) db: Db,
    pub(crate) dir: Option<TempDir>,
    pub(crate) config: Config,
}

impl Harness {
    pub(crate) fn memory(config: Config) -> Self {
        Self {
            db: Db::open_memory(config.clone()).expect("open memory"),
            dir: None,
            config,
        }
    }

    pub(crate) fn rocks(config: Config) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path(), config.clone()).expect("open rocks");
        Self {
            db,
            dir: Some(dir),
            config,
        }
    }

    /// Closes and reopens (RocksDB only; the in-memory store is returned unchanged).
    pub(crate) fn reopen(&mut self) {
        if let Some(dir) = &self.dir {
            self.db.close().expect("close");
            // Drop the old handle (and its RocksDB lock) before reopening.
            self.db = Db::open_memory(self.config.clone()).expect("placeholder");
            self.db = Db::open(dir.path(), self.config.clone()).expect("reopen");
        }
    }
}

/// Stamps out `$test(make_harness)` for each backend.
#[macro_export]
macro_rules! for_each_backend {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(#[test] fn $test() { super::$test(&|c| $crate::backends::Harness::memory(c)); })*
        }
        mod rocks {
            $(#[test] fn $test() { super::$test(&|c| $crate::backends::Harness::rocks(c)); })*
        }
    };
}

pub(crate) type MakeHarness = dyn Fn(Config) -> Harness;
