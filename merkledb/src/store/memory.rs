//! An in-memory [`Store`]: one `BTreeMap` per space behind a lock. Writes are atomic by holding
//! the lock for the whole batch; nothing survives the process.

use std::{collections::BTreeMap, ops::Bound, sync::RwLock};

use super::{Batch, Durability, Record, Space, Store};
use crate::error::StoreError;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// An in-memory store.
#[derive(Default)]
pub struct MemoryStore {
    spaces: RwLock<[Map; 4]>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn index(space: Space) -> usize {
    match space {
        Space::Values => 0,
        Space::Nodes => 1,
        Space::Meta => 2,
        Space::History => 3,
    }
}

impl Store for MemoryStore {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let spaces = self.spaces.read().map_err(|_| StoreError::Poisoned)?;
        Ok(spaces[index(space)].get(key).cloned())
    }

    fn scan(
        &self,
        space: Space,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let spaces = self.spaces.read().map_err(|_| StoreError::Poisoned)?;
        let upper = match end {
            Some(e) if e < start => return Ok(Vec::new()),
            Some(e) => Bound::Included(e),
            None => Bound::Unbounded,
        };
        Ok(spaces[index(space)]
            .range::<[u8], _>((Bound::Included(start), upper))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn write(&self, batch: Batch<'_>, _durability: Durability) -> Result<(), StoreError> {
        let mut spaces = self.spaces.write().map_err(|_| StoreError::Poisoned)?;
        apply(&mut spaces, batch);
        Ok(())
    }

    fn clear_and_write(
        &self,
        clear: &[Space],
        batch: Batch<'_>,
        _durability: Durability,
    ) -> Result<(), StoreError> {
        let mut spaces = self.spaces.write().map_err(|_| StoreError::Poisoned)?;
        for space in clear {
            spaces[index(*space)].clear();
        }
        apply(&mut spaces, batch);
        Ok(())
    }
}

/// Applies `batch`'s writes in order.
fn apply(spaces: &mut [Map; 4], batch: Batch<'_>) {
    for (space, key, value) in batch.ops {
        let map = &mut spaces[index(space)];
        match value {
            Some(v) => map.insert(key.into_owned(), v.into_owned()),
            None => map.remove(key.as_ref()),
        };
    }
}
