//! The commit protocol: one atomic store batch of values, head, history and application
//! metadata; the dirty-set update beside the write; the in-memory state updated only once the
//! batch is durable (see ARCHITECTURE.md, "Commit protocol and invariants").

use std::sync::atomic::Ordering;

use super::Proposal;
use crate::{
    db::{HistoryEntry, root_hash},
    error::{Error, Result},
    layout::{HISTORY_INDEX, HISTORY_UNDO, Head, META_HEAD, history_key, write_app_meta},
    store::{Batch, Durability, Space},
};

impl Proposal {
    /// Commits this proposal: one atomic batch of values, head and history.
    ///
    /// An error means nothing was committed, except a `StoreError` from writing inner nodes
    /// back (a write-back this commit started or landed): the batch is then durable and the
    /// commit stands (`Db::root` shows it), while the nodes stay in memory to be written later.
    pub fn commit(&self) -> Result<()> {
        self.commit_with_meta(&[])
    }

    /// Commits this proposal together with application metadata records (`None` deletes one),
    /// in the same atomic batch: after a crash, either both the contents and the records are
    /// stored, or neither. Read them back with [`Db::app_meta`](crate::Db::app_meta).
    pub fn commit_with_meta(&self, meta: &[(&[u8], Option<&[u8]>)]) -> Result<()> {
        let p = &self.inner;
        if p.read_only {
            return Err(Error::Invalid);
        }
        let db = &p.db;
        let mut state = db.write()?;
        p.check_valid(&state)?;
        if p.parent.as_ref().is_some_and(|q| !q.is_committed()) {
            return Err(Error::ParentNotCommitted);
        }
        let seq = state.head.seq + 1;
        let head = Head {
            seq,
            count: p.count,
            root: p.root.clone(),
        };
        let before = root_hash(&state.head.root);
        let after = root_hash(&p.root);
        // Values, head, history index and undo, metadata, and a few expired history records.
        let mut batch = Batch::with_capacity(p.changes.len() + meta.len() + 8);
        for (key, value) in p.changes.iter() {
            match value {
                Some(v) => batch.put(Space::Values, key.as_slice(), v.as_slice()),
                None => batch.delete(Space::Values, key.as_slice()),
            }
        }
        batch.put(Space::Meta, META_HEAD.to_vec(), head.encode());
        write_app_meta(&mut batch, meta);
        let history_len = db.config.history_len as u64;
        let mut new_entry = None;
        if history_len > 0 {
            let mut index = Vec::with_capacity(64);
            index.extend_from_slice(before.as_bytes());
            index.extend_from_slice(after.as_bytes());
            batch.put(Space::History, history_key(HISTORY_INDEX, seq), index);
            batch.put(
                Space::History,
                history_key(HISTORY_UNDO, seq),
                p.undo.as_slice(),
            );
            new_entry = Some(HistoryEntry { seq, before, after });
        }
        let expired: Vec<u64> = state
            .history
            .iter()
            .map(|e| e.seq)
            .filter(|&s| s + history_len <= seq)
            .collect();
        for s in &expired {
            batch.delete(Space::History, history_key(HISTORY_INDEX, *s));
            batch.delete(Space::History, history_key(HISTORY_UNDO, *s));
        }
        // The store write runs beside the dirty-set update and the freeing of what earlier
        // commits left; the set is restored if the write fails. What this commit replaces is
        // freed by the next one.
        let state = &mut *state;
        let garbage = db.take_garbage();
        let (written, displaced) = rayon::join(
            || db.store.write(batch, Durability::Process),
            || {
                let lower_in_dirty = db.lower_nodes_fit(head.count);
                let displaced = db.absorb_nodes(&mut state.dirty, &p.nodes, lower_in_dirty);
                drop(garbage);
                displaced
            },
        );
        if let Err(e) = written {
            db.restore_dirty(&mut state.dirty, &p.nodes, displaced);
            return Err(e.into());
        }
        db.defer_drop(Box::new(displaced));
        // The batch is durable: update the in-memory state to match.
        state.head = head;
        state.history.retain(|e| e.seq + history_len > seq);
        state.history.extend(new_entry);
        p.committed.store(true, Ordering::Release);
        // Past its budget, the dirty set sheds a sixteenth of it, deepest nodes first, on a
        // thread of its own: a commit never pays for writing back the whole set (a stall of a
        // second at 1M keys), nor waits for the write of a sixteenth (100-400 ms at 100M keys)
        // unless the previous one is still running when the next is due.
        db.land_write_back(state, false, true)?;
        let budget = db.config.dirty_node_budget;
        if state.dirty.len() > budget {
            db.start_write_back(state, state.dirty.len() - budget + budget / 16)?;
        } else {
            db.fit_cache(state);
        }
        Ok(())
    }
}
