//! Keyed pseudo-random draws: the same key always gives the same number.
//!
//! The simulator does not keep a random stream that is consumed in order.
//! Each decision (is this segment lost? where is this connection cut?) hashes
//! its own key — the seed plus what identifies the decision — so a decision
//! does not depend on how many others were drawn before it, or on how the
//! kernel happened to split reads. The mixer is SplitMix64's finaliser, written
//! out here so that a seed keeps meaning the same thing whatever crate
//! versions the workspace moves to.

/// The SplitMix64 finaliser: a bijective mix with good avalanche.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A 64-bit number determined by `key`.
pub(crate) fn draw(key: &[u64]) -> u64 {
    key.iter().fold(0, |h, &word| mix(h ^ word))
}

/// A number in `[0, 1)` determined by `key`.
pub(crate) fn unit(key: &[u64]) -> f64 {
    // The top 53 bits fill an f64 mantissa exactly.
    (draw(key) >> 11) as f64 / (1u64 << 53) as f64
}

/// A number in `lo..=hi` determined by `key` (the modulo bias is below 2^-40
/// for any range a test would use).
pub(crate) fn in_range(key: &[u64], lo: u64, hi: u64) -> u64 {
    assert!(lo <= hi, "empty range {lo}..={hi}");
    match (hi - lo).checked_add(1) {
        Some(span) => lo + draw(key) % span,
        None => draw(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_depend_on_every_word_of_the_key_and_nothing_else() {
        assert_eq!(draw(&[7, 1, 2]), draw(&[7, 1, 2]));
        assert_ne!(draw(&[7, 1, 2]), draw(&[7, 2, 1]));
        assert_ne!(draw(&[7, 1, 2]), draw(&[8, 1, 2]));
    }

    #[test]
    fn unit_draws_are_spread_over_zero_to_one() {
        let n = 10_000;
        let below_half = (0..n).filter(|&i| unit(&[42, i]) < 0.5).count();
        assert!((4_700..5_300).contains(&below_half), "{below_half} of {n} below 0.5");
        assert!((0..n).all(|i| (0.0..1.0).contains(&unit(&[42, i]))));
    }

    #[test]
    fn range_draws_stay_in_range_and_reach_both_ends() {
        let draws: Vec<u64> = (0..1_000).map(|i| in_range(&[3, i], 10, 13)).collect();
        assert!(draws.iter().all(|d| (10..=13).contains(d)));
        assert!(draws.contains(&10) && draws.contains(&13));
        assert_eq!(in_range(&[1], 5, 5), 5);
        let _ = in_range(&[1], 0, u64::MAX);
    }
}
