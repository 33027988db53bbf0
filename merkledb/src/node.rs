//! Trie nodes.

use crate::{
    hash::{Hash, ValueDigest, hash_node},
    key::Key,
};

/// A child pointer: what a node knows about one child.
///
/// The child's full key is `parent.key ‖ index token ‖ compressed`. Only `index` and `id` enter
/// the parent's hash; `compressed` and `has_value` are bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Child {
    /// The child's key bits after the parent's key and the index token.
    pub compressed: Key,
    /// The child's node ID.
    pub id: Hash,
    /// True when the child node holds a value.
    pub has_value: bool,
}

/// A trie node: its full key, the digest of its value (if any) and its children.
///
/// Invariants in a canonical trie: a node without a value has at least two children (except a
/// lone root... which is then compressed away too); values sit only at whole-byte keys;
/// `children` is sorted by index with no duplicates and every index is below the branch factor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The node's full key.
    pub key: Key,
    /// The digest of the node's value, if it has one.
    pub value: Option<ValueDigest>,
    /// Children by ascending index.
    pub children: Vec<(u8, Child)>,
}

impl Node {
    /// A node without children.
    pub fn leaf(key: Key, value: ValueDigest) -> Self {
        Self {
            key,
            value: Some(value),
            children: Vec::new(),
        }
    }

    /// The node's ID (hash).
    pub fn id(&self) -> Hash {
        hash_node(
            &self.key,
            self.value.as_ref(),
            self.children.iter().map(|(i, c)| (*i, &c.id)),
        )
    }

    /// The child at `index`.
    pub fn child(&self, index: u8) -> Option<&Child> {
        self.children
            .binary_search_by_key(&index, |(i, _)| *i)
            .ok()
            .map(|pos| &self.children[pos].1)
    }

    /// The full key of the child at `index`.
    pub fn child_key(&self, index: u8, child: &Child, token_bits: usize) -> Key {
        self.key.join(index, token_bits, &child.compressed)
    }

    /// Sets or removes the child at `index`.
    pub fn set_child(&mut self, index: u8, child: Option<Child>) {
        match (
            self.children.binary_search_by_key(&index, |(i, _)| *i),
            child,
        ) {
            (Ok(pos), Some(c)) => self.children[pos].1 = c,
            (Ok(pos), None) => {
                self.children.remove(pos);
            }
            (Err(pos), Some(c)) => self.children.insert(pos, (index, c)),
            (Err(_), None) => {}
        }
    }
}

/// A reference to the root of a subtrie: its full key, ID and whether it holds a value. It is all
/// a parent (or the database, for the trie root) records about a subtrie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubRoot {
    /// The full key of the subtrie's top node.
    pub key: Key,
    /// That node's ID.
    pub id: Hash,
    /// Whether that node holds a value.
    pub has_value: bool,
}

impl SubRoot {
    /// The reference to `node`, whose ID is `id`.
    pub fn of(node: &Node, id: Hash) -> Self {
        Self {
            key: node.key.clone(),
            id,
            has_value: node.value.is_some(),
        }
    }

    /// The child pointer to this subtrie from a parent whose child keys start at bit `offset`
    /// (`parent key bits + token bits`).
    pub fn to_child(&self, offset: usize) -> Child {
        Child {
            compressed: self.key.skip(offset),
            id: self.id,
            has_value: self.has_value,
        }
    }
}
