use super::*;
use crate::{hash::ValueDigest, node::Children};

fn node(key: &[u8], value: &[u8]) -> Arc<Node> {
    Arc::new(Node {
        key: Key::from_bytes(key),
        value: Some(ValueDigest::of(value)),
        children: Children::new(),
    })
}

#[test]
fn entries_replace_each_other_and_report_what_was_there() {
    let mut dirty = DirtyNodes::default();
    let a = Key::from_bytes(b"a");
    assert!(dirty.get(&a).is_none());
    assert_eq!(dirty.set(&a, Some(node(b"a", b"1"))), None);
    let before = dirty.set(&a, Some(node(b"a", b"2")));
    assert_eq!(before, Some(Some(node(b"a", b"1"))));
    assert_eq!(dirty.get(&a), Some(Some(&node(b"a", b"2"))));
    // A deletion replaces the node, and a node replaces the deletion.
    assert_eq!(dirty.set(&a, None), Some(Some(node(b"a", b"2"))));
    assert_eq!(dirty.get(&a), Some(None));
    assert_eq!(dirty.len(), 1);
    assert_eq!(dirty.set(&a, None), Some(None));
    assert_eq!(dirty.set(&a, Some(node(b"a", b"3"))), Some(None));
    assert_eq!(dirty.len(), 1);
    let b = Key::from_bytes(b"b");
    dirty.set(&b, None);
    assert_eq!(dirty.len(), 2);
    dirty.remove(&a);
    dirty.remove(&b);
    assert!(dirty.is_empty());
}

/// Keys of every length are found; keys equal in bytes but not in length stay apart.
#[test]
fn keys_of_every_length_are_found_and_counted() {
    let mut dirty = DirtyNodes::default();
    let long = [0xa5u8; 40];
    let mut keys = Vec::new();
    for bits in (0..=long.len() * 8).step_by(4) {
        keys.push(Key::from_bytes(&long).take(bits));
    }
    for key in &keys {
        let node = Arc::new(Node {
            key: key.clone(),
            value: None,
            children: Children::new(),
        });
        assert_eq!(dirty.set(key, Some(node)), None, "{key:?}");
    }
    assert_eq!(dirty.len(), keys.len());
    for key in &keys {
        let found = dirty.get(key).flatten().expect("present");
        assert_eq!(found.key, *key);
    }
    assert_eq!(dirty.len(), keys.len());
    // Removing one key leaves its prefixes in place.
    let last = keys.last().expect("keys");
    assert!(matches!(dirty.set(last, None), Some(Some(_))));
    assert_eq!(dirty.get(last), Some(None));
    assert!(dirty.get(&keys[keys.len() - 2]).flatten().is_some());
    let (nodes, removed) = dirty.take();
    assert_eq!((nodes.len(), removed.len()), (keys.len() - 1, 1));
    assert!(dirty.is_empty());
}

#[test]
fn take_deepest_takes_the_longest_keys_first_and_every_deletion() {
    let mut dirty = DirtyNodes::default();
    let keys: [&[u8]; 6] = [b"a", b"bb", b"cc", b"ddd", b"eee", b"ffff"];
    for key in keys {
        dirty.set(&Key::from_bytes(key), Some(node(key, b"v")));
    }
    dirty.set(&Key::from_bytes(b"gone"), None);
    let (nodes, removed) = dirty.take_deepest(3);
    let mut taken: Vec<Vec<u8>> = nodes.iter().map(|n| n.key.as_bytes().to_vec()).collect();
    taken.sort();
    // "ffff", both three-byte keys, and no more than needed.
    assert_eq!(
        taken,
        vec![b"ddd".to_vec(), b"eee".to_vec(), b"ffff".to_vec()]
    );
    assert_eq!(removed, vec![Key::from_bytes(b"gone")]);
    assert_eq!(dirty.len(), 3);
    // Ties at the cut are taken only as far as needed.
    let (nodes, removed) = dirty.take_deepest(1);
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].key.bit_len(), 16);
    assert!(removed.is_empty());
    assert_eq!(dirty.len(), 2);
    assert!(dirty.get(&Key::from_bytes(b"a")).is_some());
    // Asking for more than there is takes everything.
    let (nodes, _) = dirty.take_deepest(10);
    assert_eq!(nodes.len(), 2);
    assert!(dirty.is_empty());
}
