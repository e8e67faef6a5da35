//! Scores: the unbiased pass@k estimator (Chen et al. 2021) and edit similarity exactly as the
//! repository-level benchmarks compute it (fuzzywuzzy's `fuzz.ratio` over Python difflib's
//! `SequenceMatcher`, autojunk included).

use std::collections::HashMap;

/// pass@k of one problem with `n` samples of which `c` passed: `1 - C(n-c, k) / C(n, k)`,
/// computed as a product (no large binomials); 1 when fewer than k samples failed. `None` when
/// `k > n` (not estimable; the reference reports such k not at all).
pub fn pass_at_k(n: usize, c: usize, k: usize) -> Option<f64> {
    if k == 0 || k > n || c > n {
        return None;
    }
    if n - c < k {
        return Some(1.0);
    }
    let prod: f64 = ((n - c + 1)..=n).map(|i| 1.0 - k as f64 / i as f64).product();
    Some(1.0 - prod)
}

/// Python difflib's `SequenceMatcher(None, a, b).ratio()` over characters: 2·M / (|a| + |b|),
/// M the characters in the matching blocks found by longest-match recursion, with difflib's
/// default "autojunk" (when |b| ≥ 200, characters of b occurring more than 1% + 1 times are
/// ignored as match anchors).
pub fn difflib_ratio(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let total = a.len() + b.len();
    if total == 0 {
        return 1.0;
    }
    2.0 * matching_chars(&a, &b) as f64 / total as f64
}

/// `fuzz.ratio(a, b)` of fuzzywuzzy 0.18 without python-Levenshtein: an integer percent —
/// 100 when equal, 0 when either is empty, else `round(100 * difflib_ratio)` (Python's
/// round-half-even).
pub fn edit_similarity(a: &str, b: &str) -> u32 {
    if a == b {
        return 100;
    }
    if a.is_empty() || b.is_empty() {
        return 0;
    }
    let x = 100.0 * difflib_ratio(a, b);
    let r = x.round();
    // Python rounds halves to even.
    (if (x - x.trunc() - 0.5).abs() < 1e-12 && (r as i64) % 2 != 0 { r - 1.0 } else { r }) as u32
}

/// Sum of the sizes of difflib's matching blocks.
fn matching_chars(a: &[char], b: &[char]) -> usize {
    // b2j: positions of each character of b, minus junk (autojunk's popular characters).
    let mut b2j: HashMap<char, Vec<usize>> = HashMap::new();
    for (j, &c) in b.iter().enumerate() {
        b2j.entry(c).or_default().push(j);
    }
    if b.len() >= 200 {
        let ntest = b.len() / 100 + 1;
        b2j.retain(|_, v| v.len() <= ntest);
    }
    let mut total = 0;
    let mut queue = vec![(0, a.len(), 0, b.len())];
    while let Some((alo, ahi, blo, bhi)) = queue.pop() {
        let (i, j, k) = longest_match(a, b, &b2j, alo, ahi, blo, bhi);
        if k > 0 {
            total += k;
            if alo < i && blo < j {
                queue.push((alo, i, blo, j));
            }
            if i + k < ahi && j + k < bhi {
                queue.push((i + k, ahi, j + k, bhi));
            }
        }
    }
    total
}

/// difflib's `find_longest_match` with no junk function: popular characters are not anchors,
/// and the longest match is then extended over equal neighbours.
// Indexing by `i` mirrors difflib's loop (i also positions the match).
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
fn longest_match(
    a: &[char],
    b: &[char],
    b2j: &HashMap<char, Vec<usize>>,
    alo: usize,
    ahi: usize,
    blo: usize,
    bhi: usize,
) -> (usize, usize, usize) {
    let (mut besti, mut bestj, mut bestsize) = (alo, blo, 0usize);
    let mut j2len: HashMap<usize, usize> = HashMap::new();
    for i in alo..ahi {
        let mut newj2len: HashMap<usize, usize> = HashMap::new();
        if let Some(js) = b2j.get(&a[i]) {
            for &j in js {
                if j < blo {
                    continue;
                }
                if j >= bhi {
                    break;
                }
                let k = j.checked_sub(1).and_then(|p| j2len.get(&p)).copied().unwrap_or(0) + 1;
                newj2len.insert(j, k);
                if k > bestsize {
                    besti = i + 1 - k;
                    bestj = j + 1 - k;
                    bestsize = k;
                }
            }
        }
        j2len = newj2len;
    }
    // Extend over equal neighbours: with no junk function every character is "not junk" to
    // difflib here, so this picks up the popular characters that could not anchor a match.
    while besti > alo && bestj > blo && a[besti - 1] == b[bestj - 1] {
        besti -= 1;
        bestj -= 1;
        bestsize += 1;
    }
    while besti + bestsize < ahi && bestj + bestsize < bhi && a[besti + bestsize] == b[bestj + bestsize] {
        bestsize += 1;
    }
    (besti, bestj, bestsize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_at_k_matches_hand_computed_values() {
        // n = 5, c = 2, k = 1: 2/5.
        assert!((pass_at_k(5, 2, 1).unwrap() - 0.4).abs() < 1e-12);
        // n = 5, c = 2, k = 2: 1 - C(3,2)/C(5,2) = 1 - 3/10.
        assert!((pass_at_k(5, 2, 2).unwrap() - 0.7).abs() < 1e-12);
        // n = 10, c = 3, k = 5: 1 - C(7,5)/C(10,5) = 1 - 21/252.
        assert!((pass_at_k(10, 3, 5).unwrap() - (1.0 - 21.0 / 252.0)).abs() < 1e-12);
        assert_eq!(pass_at_k(4, 3, 2), Some(1.0), "fewer than k failures");
        assert_eq!(pass_at_k(3, 0, 1), Some(0.0));
        assert_eq!(pass_at_k(1, 1, 1), Some(1.0));
        assert_eq!(pass_at_k(3, 1, 4), None, "k above n");
    }

    #[test]
    fn edit_similarity_edges() {
        assert_eq!(edit_similarity("abc", "abc"), 100);
        assert_eq!(edit_similarity("", "abc"), 0);
        assert_eq!(edit_similarity("abcd", "bcde"), 75); // 2*3/8
    }
}
