//! `Children` against a plain sorted map, with compressed keys short and long (longer ones are
//! kept in a buffer beside the fixed-size records).
use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn child(bits: usize, fill: u8, id: u8, has_value: bool) -> Child {
    let bytes = vec![fill; bits.div_ceil(8)];
    Child {
        compressed: Key::from_bits(&bytes, bits).expect("length matches"),
        id: Hash([id; 32]),
        has_value,
        height: id % 3,
    }
}

fn assert_matches(children: &Children, model: &BTreeMap<u8, Child>) {
    assert_eq!(children.len(), model.len());
    let got: Vec<(u8, Child)> = children.iter().map(|c| (c.index, c.to_child())).collect();
    let want: Vec<(u8, Child)> = model.iter().map(|(i, c)| (*i, c.clone())).collect();
    assert_eq!(got, want);
    for (index, c) in model {
        assert_eq!(
            children.get_ref(*index).map(|r| r.to_child()).as_ref(),
            Some(c)
        );
    }
    let ids: Vec<(u8, Hash)> = children.ids().map(|(i, h)| (i, *h)).collect();
    let want_ids: Vec<(u8, Hash)> = model.iter().map(|(i, c)| (*i, c.id)).collect();
    assert_eq!(ids, want_ids);
}

#[test]
fn long_keys_survive_replacement_and_removal() {
    let mut children = Children::new();
    let mut model = BTreeMap::new();
    // 4 bytes fit in the record; 5, 36, 37 and 300 bytes go to the buffer.
    for (index, bits) in [
        (1u8, 288usize),
        (2, 289),
        (7, 32),
        (8, 33),
        (3, 2400),
        (4, 0),
        (5, 3),
        (6, 1000),
    ] {
        let c = child(bits, index.wrapping_mul(37), index, index % 2 == 0);
        children.set(index, Some(c.clone()));
        model.insert(index, c);
    }
    assert_matches(&children, &model);
    // Removing a long key leaves its bytes in the buffer; the others stay readable.
    children.set(2, None);
    model.remove(&2);
    assert_matches(&children, &model);
    // A long key replaced by a short one, and a short one by a long one.
    let short = child(12, 0xab, 9, false);
    children.set(3, Some(short.clone()));
    model.insert(3, short);
    let long = child(777, 0x5a, 8, true);
    children.set(4, Some(long.clone()));
    model.insert(4, long);
    assert_matches(&children, &model);
    let copy = children.clone();
    assert_eq!(copy, children);
    children.set(6, None);
    assert_ne!(copy, children);
    // A copy keeps only the live long keys; a key replaced by one of its length reuses its bytes.
    let live = |c: &Children| {
        c.slots
            .iter()
            .filter_map(Slot::long_range)
            .map(|r| r.len())
            .sum::<usize>()
    };
    assert!(children.long.len() > live(&children));
    let tight = children.clone_with_room(3);
    assert_eq!(tight, children);
    assert_eq!(tight.long.len(), live(&tight));
    let mut tight = tight;
    let same_length = child(289, 0x11, 4, false);
    tight.set(1, Some(child(288, 0x77, 1, true)));
    let before = tight.long.len();
    tight.set(1, Some(child(288, 0x78, 1, true)));
    assert_eq!(tight.long.len(), before, "replaced in place");
    tight.set(2, Some(same_length.clone()));
    model.insert(1, child(288, 0x78, 1, true));
    model.remove(&6);
    model.insert(2, same_length);
    assert_matches(&tight, &model);
}

proptest! {
    #[test]
    fn children_behave_like_a_sorted_map(
        ops in proptest::collection::vec((0u8..20, proptest::option::of((0usize..400, any::<u8>()))), 0..60)
    ) {
        let mut children = Children::new();
        let mut model = BTreeMap::new();
        for (index, op) in ops {
            match op {
                Some((bits, fill)) => {
                    let c = child(bits, fill, fill, bits % 2 == 0);
                    children.set(index, Some(c.clone()));
                    model.insert(index, c);
                }
                None => {
                    children.set(index, None);
                    model.remove(&index);
                }
            }
            assert_matches(&children, &model);
            // A copy drops what replaced keys left behind, and stays equal.
            if children.long.len() > 64 {
                children = children.clone_with_room(1);
                assert_matches(&children, &model);
            }
        }
    }
}

proptest! {
    /// A child set from a subtrie's key and offset is the child `SubRoot::to_child` builds, for
    /// compressed keys inside the record and in the side list, at every bit offset.
    #[test]
    fn set_subroot_equals_set_with_to_child(
        bytes in proptest::collection::vec(any::<u8>(), 0..48),
        cut in 0usize..400,
        index in any::<u8>(),
        id in any::<u8>(),
        has_value in any::<bool>(),
    ) {
        let key = Key::from_bytes(&bytes);
        let offset = cut.min(key.bit_len());
        let sub = SubRoot { key, id: Hash([id; 32]), has_value, height: id % 4 };
        let mut by_child = Children::new();
        by_child.set(index, Some(sub.to_child(offset)));
        let mut by_subroot = Children::new();
        by_subroot.set_subroot(index, Some(&sub), offset);
        prop_assert_eq!(&by_subroot, &by_child);
        // Replacing and removing through either path keeps them equal.
        by_child.set(index, Some(sub.to_child(0)));
        by_subroot.set_subroot(index, Some(&sub), 0);
        prop_assert_eq!(&by_subroot, &by_child);
        by_child.set(index, None);
        by_subroot.set_subroot(index, None, 0);
        prop_assert!(by_subroot.is_empty() && by_child.is_empty());
    }
}
