//! Union-find (a disjoint-set forest) over `0..n`: the weakly connected components of a
//! repository's import graph, the clusters of near-duplicate samples.
//!
//! **The root of a set is always its smallest element**: [`UnionFind::union`] points the larger
//! root at the smaller. Callers may rely on it (a component's root is its first file in path
//! order), and it makes the forest a function of the unions' sets alone, not of their order
//! or of which element each union names. [`UnionFind::find`] halves paths as it goes (each
//! visited node is pointed at its grandparent), which keeps the trees flat without recursion.
//! No union by rank: with the root fixed as the minimum, path halving alone keeps `find`
//! amortised logarithmic, which is plenty for the sizes here.

/// A disjoint-set forest over `0..n` whose roots are their sets' smallest elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    /// `n` singleton sets `{0}, {1}, ..., {n-1}`.
    pub fn new(n: usize) -> Self {
        UnionFind { parent: (0..n).collect() }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.parent.len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    /// The root of `x`'s set: its smallest element. Halves the path on the way.
    pub fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    /// Merges the sets of `a` and `b`; the smaller of the two roots becomes the root. Returns
    /// whether they were separate.
    pub fn union(&mut self, a: usize, b: usize) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return false;
        }
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        self.parent[hi] = lo;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn singletons_are_their_own_roots() {
        let mut uf = UnionFind::new(4);
        assert_eq!((0..4).map(|i| uf.find(i)).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert_eq!(uf.len(), 4);
        assert!(!uf.is_empty());
        assert!(UnionFind::new(0).is_empty());
    }

    #[test]
    fn the_root_is_the_smallest_element_whatever_the_union_order() {
        let mut uf = UnionFind::new(10);
        assert!(uf.union(7, 9));
        assert!(uf.union(9, 4));
        assert!(uf.union(8, 5));
        assert!(uf.union(5, 9));
        assert!(!uf.union(4, 8), "already one set");
        for x in [4, 5, 7, 8, 9] {
            assert_eq!(uf.find(x), 4);
        }
        for x in [0, 1, 2, 3, 6] {
            assert_eq!(uf.find(x), x);
        }
        assert!(uf.union(6, 0));
        assert_eq!(uf.find(6), 0);
    }

    /// Against a naive labelling on a pseudo-random sequence of unions (a chain, then long
    /// paths merged, so halving has work to do).
    #[test]
    fn agrees_with_naive_labels() {
        let n = 200;
        let mut uf = UnionFind::new(n);
        let mut label: Vec<usize> = (0..n).collect();
        let mut state = 12345u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as usize % n
        };
        for step in 0..300 {
            let (a, b) = if step < 50 { (n - 1 - step, n - 2 - step) } else { (next(), next()) };
            uf.union(a, b);
            let (la, lb) = (label[a], label[b]);
            let (lo, hi) = (la.min(lb), la.max(lb));
            for l in label.iter_mut() {
                if *l == hi {
                    *l = lo;
                }
            }
            if step % 25 == 0 {
                for (x, &l) in label.iter().enumerate() {
                    assert_eq!(uf.find(x), l, "element {x} after {step} unions");
                }
            }
        }
        for (x, &l) in label.iter().enumerate() {
            assert_eq!(uf.find(x), l);
        }
    }
}
