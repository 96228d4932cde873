//! The rule agents spread a commit by (spec §5a), pure so that the agent and the simulation of
//! `make bench` (benches/gossip.rs) run the same code: after committing, a node tells its
//! reachable peers, in random order, `fanout` at a time, and goes on to the next group only
//! while some of the last one were behind — a rumour stops once it meets peers that know it —
//! and for at most [`MAX_GROUPS`] groups, so that no node tells the whole mesh by itself: the
//! peers it told spread it on. A node the rumour misses gets it at its next periodic pull.

/// The most groups one spread tells.
pub const MAX_GROUPS: usize = 4;

/// What one spread did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spread {
    /// Peers told.
    pub told: usize,
    /// Of those, the ones that were behind.
    pub behind: usize,
    /// Groups told.
    pub groups: usize,
}

/// Tells `peers` (in the order given: the caller shuffles them) `fanout` at a time for as long
/// as some of the last group were behind, at most [`MAX_GROUPS`] groups. `tell` tells one group
/// and returns how many of it were behind.
pub fn spread<P>(
    peers: impl IntoIterator<Item = P>,
    fanout: usize,
    mut tell: impl FnMut(&[P]) -> usize,
) -> Spread {
    let fanout = fanout.max(1);
    let mut peers = peers.into_iter();
    let mut s = Spread::default();
    loop {
        let group: Vec<P> = peers.by_ref().take(fanout).collect();
        if group.is_empty() {
            return s;
        }
        let behind = tell(&group);
        s.told += group.len();
        s.behind += behind;
        s.groups += 1;
        if behind == 0 || s.groups == MAX_GROUPS {
            return s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spread_goes_on_while_a_group_was_behind_and_stops_at_one_that_was_not() {
        // Peers 0..10; those below 5 are behind.
        let mut groups = Vec::new();
        let s = spread(0..10, 3, |g: &[u32]| {
            groups.push(g.to_vec());
            g.iter().filter(|p| **p < 5).count()
        });
        assert_eq!(groups, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8]]);
        assert_eq!(
            s,
            Spread {
                told: 9,
                behind: 5,
                groups: 3
            }
        );
        // Every group behind: every peer is told, the last group short...
        let s = spread(0..7, 3, |g: &[u32]| g.len());
        assert_eq!((s.told, s.groups), (7, 3));
        // ... up to the cap.
        let s = spread(0..100, 3, |g: &[u32]| g.len());
        assert_eq!((s.told, s.groups), (3 * MAX_GROUPS, MAX_GROUPS));
        // No peers: nothing told; a fanout of 0 counts as 1.
        assert_eq!(spread(0..0, 3, |_: &[u32]| 0), Spread::default());
        assert_eq!(spread(0..2, 0, |g: &[u32]| g.len()).groups, 2);
    }
}
