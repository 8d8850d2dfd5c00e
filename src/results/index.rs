//! An index of a run's points by (sweep labels, time), so that post-processing which looks up "the
//! point with these settings" (paired differences, the noise budget, the report's loss table) is
//! one hash look-up per question instead of a scan of every point: linear in the number of points
//! overall, where a scan per pair made a 4,000-point sweep quadratic.

use std::collections::HashMap;

use super::{Point, Results};

/// Labels in key order (a `BTreeMap`'s iteration order) and the time's bits.
type Key<'a> = (Vec<(&'a str, &'a str)>, u64);

/// The time as a hashable key; ±0 compare equal as floats, so they share one key.
fn time_key(t: f64) -> u64 {
    if t == 0.0 {
        0
    } else {
        t.to_bits()
    }
}

/// Points of a run by their exact label set and time. Where two points share both (a merged or
/// hand-edited file), the first in file order answers, as the linear scans it replaces did.
pub struct PointIndex<'a> {
    points: HashMap<Key<'a>, &'a Point>,
}

impl<'a> PointIndex<'a> {
    pub fn new(results: &'a Results) -> Self {
        let mut points = HashMap::with_capacity(results.points.len());
        for p in &results.points {
            let labels = p.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            points.entry((labels, time_key(p.t_inf))).or_insert(p);
        }
        PointIndex { points }
    }

    /// The point with `p`'s labels and time, except `axis` set to `value` (`axis` must be one of
    /// `p`'s labels; otherwise there is no such point).
    pub fn with(&self, p: &Point, axis: &str, value: &str) -> Option<&'a Point> {
        if !p.labels.contains_key(axis) {
            return None;
        }
        let labels: Vec<(&str, &str)> = p.labels.iter().map(|(k, v)| (k.as_str(), if k == axis { value } else { v.as_str() })).collect();
        self.points.get(&(labels, time_key(p.t_inf))).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::synthetic;

    #[test]
    fn finds_the_point_with_one_label_changed() {
        let r = synthetic();
        let index = PointIndex::new(&r);
        for p in &r.points {
            let q = index.with(p, "gdc", "readout").expect("every time has both gdc values");
            assert_eq!((q.labels["gdc"].as_str(), q.t_inf), ("readout", p.t_inf));
            assert!(index.with(p, "gdc", "neither").is_none());
            assert!(index.with(p, "model", "pcm").is_none(), "an axis the point does not have");
        }
    }
}
