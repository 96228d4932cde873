//! The Merkle tree hash of RFC 9162 §2.1 over a list of leaves, and its inclusion proofs
//! (spec §4).
//!
//! ```text
//! MTH({})       = SHA-256()
//! MTH({d0})     = SHA-256(0x00 ‖ d0)
//! MTH(D[n])     = SHA-256(0x01 ‖ MTH(D[0:k]) ‖ MTH(D[k:n]))    k = largest power of 2 < n
//! ```
//!
//! [`Tree`] keeps every complete subtree (the hash over leaves `[j·2^k, (j+1)·2^k)` at level
//! `k`), so replacing a leaf re-hashes its path and the right spine — O(log n) — and inserting
//! or removing one re-hashes only the subtrees at and after it. The free functions compute the
//! same values from scratch; the tests hold the two to each other.

use sha2::{Digest as _, Sha256};

/// A 32-byte SHA-256 value.
pub type Hash = [u8; 32];

/// The hash of a tree leaf: `SHA-256(0x00 ‖ leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(leaf);
    h.finalize().into()
}

/// The hash of an interior node: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    // One 65-byte input: a single call, no partial-block bookkeeping between three.
    let mut input = [0u8; 65];
    input[0] = 0x01;
    input[1..33].copy_from_slice(left);
    input[33..].copy_from_slice(right);
    Sha256::digest(input).into()
}

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly below `n` (`n ≥ 2`): where RFC 9162 splits a tree.
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// `MTH` over leaf hashes (`leaf_hash` of each leaf), computed from scratch.
pub fn root_of(hashes: &[Hash]) -> Hash {
    match hashes.len() {
        0 => empty_root(),
        1 => hashes[0],
        n => {
            let k = split(n);
            node_hash(&root_of(&hashes[..k]), &root_of(&hashes[k..]))
        }
    }
}

/// The audit path of leaf `index` (RFC 9162 §2.1.3.1), computed from scratch.
pub fn path_of(hashes: &[Hash], index: usize) -> Vec<Hash> {
    audit_path(hashes.len(), index, |lo, n| root_of(&hashes[lo..lo + n]))
}

/// The audit path of leaf `index` in a tree of `size` leaves, `subtree(lo, n)` giving `MTH` of
/// the `n` leaves from `lo`: descend from the root, noting the sibling at each level; the path
/// lists them leaf first.
fn audit_path(
    size: usize,
    index: usize,
    mut subtree: impl FnMut(usize, usize) -> Hash,
) -> Vec<Hash> {
    let mut path = Vec::new();
    let (mut lo, mut hi) = (0, size);
    while hi - lo > 1 {
        let k = split(hi - lo);
        if index < lo + k {
            path.push(subtree(lo + k, hi - lo - k));
            hi = lo + k;
        } else {
            path.push(subtree(lo, k));
            lo += k;
        }
    }
    path.reverse();
    path
}

/// The root that an audit path leads to from leaf hash `leaf` at `index` of a tree of `size`
/// leaves (RFC 9162 §2.1.3.2), or `None` when the path does not fit that index and size.
pub fn root_from_path(leaf: &Hash, index: u64, size: u64, path: &[Hash]) -> Option<Hash> {
    if index >= size {
        return None;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if snode == 0 {
            return None;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    (snode == 0).then_some(r)
}

/// A list of leaves in key order with every complete subtree cached. `K` is the key the
/// leaves are sorted by (a node id).
#[derive(Clone, Debug)]
pub struct Tree<K> {
    keys: Vec<K>,
    /// `levels[0][i]`: leaf hash `i`; `levels[k][j]`: the subtree over `[j·2^k, (j+1)·2^k)`.
    levels: Vec<Vec<Hash>>,
    root: Hash,
}

/// A change to one key: its new leaf hash, or `None` for removed.
pub type Change<'a, K> = (&'a K, Option<Hash>);

/// How a set of changes falls on the tree.
enum Plan {
    /// Every changed key is present and stays: `(position, new leaf hash)`, ascending.
    InPlace(Vec<(usize, Hash)>),
    /// Keys come or go: everything from `from` on is laid out afresh.
    Splice { from: usize },
}

/// The leaf list a root is computed over: the cache, with replaced leaves, or with every leaf
/// from `from` on given afresh.
struct View<'a> {
    from: usize,
    suffix: &'a [Hash],
    replaced: &'a [(usize, Hash)],
}

impl<K: Ord + Clone> Tree<K> {
    /// A tree over leaf hashes given in strictly increasing key order.
    pub fn build(leaves: impl IntoIterator<Item = (K, Hash)>) -> Tree<K> {
        let (keys, hashes): (Vec<K>, Vec<Hash>) = leaves.into_iter().unzip();
        debug_assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys in order");
        let mut t = Tree {
            keys,
            levels: vec![hashes],
            root: [0; 32],
        };
        t.rebuild_from(0);
        t
    }

    /// Number of leaves.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The tree's root, `MTH` of its leaves.
    pub fn root(&self) -> Hash {
        self.root
    }

    /// The position of `key`, if present.
    pub fn position(&self, key: &K) -> Option<usize> {
        self.keys.binary_search(key).ok()
    }

    /// The audit path of the leaf at `index` (RFC 9162 §2.1.3.1), from the cache.
    pub fn path(&self, index: usize) -> Vec<Hash> {
        let view = self.unchanged();
        audit_path(self.len(), index, |lo, n| self.hash_range(&view, lo, n))
    }

    /// The root after `changes` (in strictly increasing key order), leaving the tree as it is.
    pub fn root_with(&self, changes: &[Change<'_, K>]) -> (usize, Hash) {
        match self.plan(changes) {
            None => (self.len(), self.root),
            Some(Plan::InPlace(replaced)) => {
                let view = View {
                    from: self.len(),
                    suffix: &[],
                    replaced: &replaced,
                };
                (self.len(), self.root_over(&view, self.len()))
            }
            Some(Plan::Splice { from }) => {
                let mut suffix = Vec::with_capacity(self.len() - from + changes.len());
                self.merge(from, changes, |_, h| suffix.push(h));
                let n = from + suffix.len();
                let view = View {
                    from,
                    suffix: &suffix,
                    replaced: &[],
                };
                (n, self.root_over(&view, n))
            }
        }
    }

    /// Applies `changes` (in strictly increasing key order).
    pub fn apply(&mut self, changes: &[Change<'_, K>]) {
        match self.plan(changes) {
            None => {}
            Some(Plan::InPlace(replaced)) => {
                let n = self.len();
                for (p, h) in replaced {
                    self.levels[0][p] = h;
                    for k in 1..self.levels.len() {
                        let j = p >> k;
                        if (j + 1) << k > n {
                            break;
                        }
                        let below = &self.levels[k - 1];
                        self.levels[k][j] = node_hash(&below[2 * j], &below[2 * j + 1]);
                    }
                }
                self.root = self.root_over(&self.unchanged(), n);
            }
            Some(Plan::Splice { from }) => {
                let mut keys = Vec::with_capacity(self.len() - from + changes.len());
                let mut hashes = Vec::with_capacity(keys.capacity());
                self.merge(from, changes, |k, h| {
                    keys.push(k.clone());
                    hashes.push(h);
                });
                self.keys.truncate(from);
                self.keys.append(&mut keys);
                self.levels[0].truncate(from);
                self.levels[0].append(&mut hashes);
                self.rebuild_from(from);
            }
        }
    }

    fn plan(&self, changes: &[Change<'_, K>]) -> Option<Plan> {
        let (first, _) = changes.first()?;
        let mut replaced = Vec::with_capacity(changes.len());
        for (key, h) in changes {
            match (self.keys.binary_search(key), h) {
                (Ok(p), Some(h)) => replaced.push((p, *h)),
                _ => {
                    let from = self.keys.partition_point(|k| k < *first);
                    return Some(Plan::Splice { from });
                }
            }
        }
        Some(Plan::InPlace(replaced))
    }

    /// The leaves from position `from` on, with `changes` merged in, in key order.
    fn merge(&self, from: usize, changes: &[Change<'_, K>], mut out: impl FnMut(&K, Hash)) {
        let n = self.len();
        let mut i = from;
        for (key, h) in changes {
            while i < n && self.keys[i] < **key {
                out(&self.keys[i], self.levels[0][i]);
                i += 1;
            }
            if i < n && self.keys[i] == **key {
                i += 1;
            }
            if let Some(h) = h {
                out(key, *h);
            }
        }
        for j in i..n {
            out(&self.keys[j], self.levels[0][j]);
        }
    }

    /// Recomputes every cached subtree that covers a leaf at `from` or after, and the root.
    fn rebuild_from(&mut self, from: usize) {
        let n = self.len();
        let mut k = 1;
        while n >> k > 0 {
            if self.levels.len() == k {
                self.levels.push(Vec::new());
            }
            let (below, level) = self.levels.split_at_mut(k);
            let (below, level) = (&below[k - 1], &mut level[0]);
            let keep = (from >> k).min(n >> k);
            level.truncate(keep);
            level.extend((keep..n >> k).map(|j| node_hash(&below[2 * j], &below[2 * j + 1])));
            k += 1;
        }
        self.levels.truncate(k);
        self.root = self.root_over(&self.unchanged(), n);
    }

    fn unchanged(&self) -> View<'static> {
        View {
            from: self.len(),
            suffix: &[],
            replaced: &[],
        }
    }

    fn root_over(&self, view: &View<'_>, n: usize) -> Hash {
        if n == 0 {
            empty_root()
        } else {
            self.hash_range(view, 0, n)
        }
    }

    /// `MTH` over the `size` leaves of `view` starting at `lo`, from the cache where `view`
    /// leaves a complete subtree as it is.
    fn hash_range(&self, view: &View<'_>, lo: usize, size: usize) -> Hash {
        if lo >= view.from {
            return if size == 1 {
                view.suffix[lo - view.from]
            } else {
                let k = split(size);
                node_hash(
                    &self.hash_range(view, lo, k),
                    &self.hash_range(view, lo + k, size - k),
                )
            };
        }
        let untouched = lo + size <= view.from && {
            let i = view.replaced.partition_point(|(p, _)| *p < lo);
            view.replaced.get(i).is_none_or(|(p, _)| *p >= lo + size)
        };
        if untouched && size.is_power_of_two() {
            let k = size.trailing_zeros() as usize;
            return self.levels[k][lo >> k];
        }
        if size == 1 {
            let i = view.replaced.partition_point(|(p, _)| *p < lo);
            return view.replaced[i].1;
        }
        let k = split(size);
        node_hash(
            &self.hash_range(view, lo, k),
            &self.hash_range(view, lo + k, size - k),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn hash(s: &str) -> Hash {
        unhex(s).try_into().unwrap()
    }

    /// The eight leaves and tree heads that RFC 6962 implementations share (Certificate
    /// Transparency's reference tests); RFC 9162 §2.1 hashes trees the same way.
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn reference_leaves() -> Vec<Hash> {
        LEAVES.iter().map(|l| leaf_hash(&unhex(l))).collect()
    }

    #[test]
    fn roots_match_the_reference_tree_heads() {
        let leaves = reference_leaves();
        for (n, want) in ROOTS.iter().enumerate() {
            assert_eq!(root_of(&leaves[..n]), hash(want), "size {n}");
            let tree = Tree::build((0..n).map(|i| (i, leaves[i])));
            assert_eq!(tree.root(), hash(want), "cached, size {n}");
        }
    }

    #[test]
    fn paths_match_the_reference_proofs() {
        let leaves = reference_leaves();
        let tree = Tree::build((0..8).map(|i| (i, leaves[i])));
        for (index, want) in [
            (
                0,
                [
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                [
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ] {
            let want: Vec<Hash> = want.iter().map(|h| hash(h)).collect();
            assert_eq!(path_of(&leaves, index), want);
            assert_eq!(tree.path(index), want);
        }
    }

    #[test]
    fn every_path_leads_to_the_root_and_nowhere_else() {
        let leaves: Vec<Hash> = (0..40u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for n in 1..=leaves.len() {
            let tree = Tree::build((0..n).map(|i| (i, leaves[i])));
            let root = root_of(&leaves[..n]);
            for i in 0..n {
                let path = tree.path(i);
                assert_eq!(path, path_of(&leaves[..n], i), "size {n} index {i}");
                let (idx, size) = (i as u64, n as u64);
                assert_eq!(root_from_path(&leaves[i], idx, size, &path), Some(root));
                // Another index, leaf or a shortened path does not lead there. (Another size may:
                // the leftmost leaf's path has the same shape in trees of 5 and 6 leaves. The
                // size a proof claims is bound by the header, which hashes to the state root.)
                if n > 1 {
                    let other = (idx + 1) % size;
                    assert_ne!(root_from_path(&leaves[i], other, size, &path), Some(root));
                    assert_ne!(
                        root_from_path(&leaves[(i + 1) % n], idx, size, &path),
                        Some(root)
                    );
                    assert_ne!(
                        root_from_path(&leaves[i], idx, size, &path[1..]),
                        Some(root)
                    );
                }
                assert_eq!(root_from_path(&leaves[i], size, size, &path), None);
            }
        }
    }

    #[test]
    fn changes_give_the_root_of_the_changed_list() {
        // Keys 0, 2, 4, …: inserts land between them.
        let base: Vec<(u32, Hash)> = (0..37u32)
            .map(|i| (2 * i, leaf_hash(&i.to_le_bytes())))
            .collect();
        let h = |x: u32| Some(leaf_hash(&(1000 + x).to_le_bytes()));
        let cases: Vec<Vec<(u32, Option<Hash>)>> = vec![
            vec![],
            vec![(10, h(1))],
            vec![(0, h(1)), (72, h(2))],
            vec![(11, h(3))],
            vec![(10, None)],
            vec![(0, None), (1, h(4)), (72, None), (80, h(5))],
            (0..37).map(|i| (2 * i, None)).collect(),
            vec![(3, h(6)), (40, h(7)), (41, None)],
        ];
        for changes in cases {
            let mut tree = Tree::build(base.clone());
            let mut want: std::collections::BTreeMap<u32, Hash> = base.iter().copied().collect();
            for (k, v) in &changes {
                match v {
                    Some(v) => want.insert(*k, *v),
                    None => want.remove(k),
                };
            }
            let leaves: Vec<Hash> = want.values().copied().collect();
            let refs: Vec<Change<'_, u32>> = changes.iter().map(|(k, v)| (k, *v)).collect();
            assert_eq!(
                tree.root_with(&refs),
                (leaves.len(), root_of(&leaves)),
                "{changes:?}"
            );
            tree.apply(&refs);
            assert_eq!(tree.root(), root_of(&leaves), "applied {changes:?}");
            assert_eq!(tree.len(), leaves.len());
            assert_eq!(
                tree.levels.len(),
                if leaves.is_empty() {
                    1
                } else {
                    (usize::BITS - leaves.len().leading_zeros()) as usize
                },
                "no level left over"
            );
            for i in 0..leaves.len() {
                assert_eq!(tree.path(i), path_of(&leaves, i));
            }
        }
    }
}
