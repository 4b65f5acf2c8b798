//! Watch events → confidence-weighted implicit feedback.
//!
//! For each (user, item) pair the watch ratios of its events add up:
//! `r = Σ min(watch_time / duration, MAX_EVENT_RATIO)`, then
//!
//! ```text
//! preference p = 1
//! confidence c = 1 + alpha · min(r, MAX_PAIR_RATIO)
//! ```
//!
//! so a video watched to the end once (r = 1) weighs `1 + alpha`, a replayed one more,
//! a glance less; unobserved pairs keep c = 1, p = 0. The caps keep one absurd event
//! (a looped video left playing) from dominating a user's vector.
//!
//! Ids are mapped to dense indices in ascending id order, so index order is id order
//! and every tie broken "by index" is broken by id.

use rayon::prelude::*;

use super::interactions::{Entry, Interactions};

/// Largest watch ratio one event contributes.
pub const MAX_EVENT_RATIO: f64 = 10.0;
/// Largest summed watch ratio of one (user, item) pair.
pub const MAX_PAIR_RATIO: f64 = 10.0;

/// Events mapped to dense indices and aggregated into confidences.
#[derive(Debug)]
pub struct Feedback {
    /// Dense user index → user id, ascending.
    pub user_ids: Vec<i64>,
    /// Dense item index → item id, ascending.
    pub item_ids: Vec<i64>,
    /// One entry per distinct (user, item) pair.
    pub data: Interactions,
    /// Per item: number of distinct users with an event on it.
    pub popularity: Vec<f32>,
}

/// The confidence of a pair whose summed watch ratio is `ratio`.
pub fn confidence(ratio: f64, alpha: f32) -> f32 {
    (1.0 + alpha as f64 * ratio.clamp(0.0, MAX_PAIR_RATIO)) as f32
}

/// The watch ratio one event contributes.
pub fn event_ratio(watch_time: f64, duration: f64) -> f64 {
    if duration > 0.0 && watch_time.is_finite() {
        (watch_time / duration).clamp(0.0, MAX_EVENT_RATIO)
    } else {
        0.0
    }
}

/// Sorted distinct ids, and each input id's index among them.
fn dense_ids(ids: &[i64]) -> (Vec<i64>, Vec<u32>) {
    let mut distinct = ids.to_vec();
    distinct.par_sort_unstable();
    distinct.dedup();
    let index = ids
        .par_iter()
        .map(|id| distinct.binary_search(id).expect("id present") as u32)
        .collect();
    (distinct, index)
}

/// Builds the feedback from event columns. Runs on the current rayon pool; the result
/// does not depend on its size (stable sorts, sequential sums in event order).
pub fn build(user_ids: &[i64], item_ids: &[i64], watch_time: &[f64], duration: &[f64], alpha: f32) -> Feedback {
    let (users, user_index) = dense_ids(user_ids);
    let (items, item_index) = dense_ids(item_ids);
    let mut keyed: Vec<(u64, f64)> = (0..user_ids.len())
        .into_par_iter()
        .map(|e| {
            let key = (user_index[e] as u64) << 32 | item_index[e] as u64;
            (key, event_ratio(watch_time[e], duration[e]))
        })
        .collect();
    // Stable: events of one pair stay in event order, so their sum is reproducible.
    keyed.par_sort_by_key(|&(key, _)| key);

    let mut entries: Vec<Entry> = Vec::new();
    let mut popularity = vec![0f32; items.len()];
    let mut at = 0;
    while at < keyed.len() {
        let key = keyed[at].0;
        let mut ratio = 0.0;
        while at < keyed.len() && keyed[at].0 == key {
            ratio += keyed[at].1;
            at += 1;
        }
        let (user, item) = ((key >> 32) as u32, key as u32);
        popularity[item as usize] += 1.0;
        entries.push(Entry { user, item, confidence: confidence(ratio, alpha), preference: 1.0 });
    }
    let data = Interactions::from_entries(users.len(), items.len(), &entries);
    Feedback { user_ids: users, item_ids: items, data, popularity }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_follows_the_documented_formula() {
        assert_eq!(confidence(1.0, 10.0), 11.0);
        assert_eq!(confidence(0.5, 2.0), 2.0);
        assert_eq!(confidence(50.0, 1.0), 11.0); // capped at MAX_PAIR_RATIO
        assert_eq!(event_ratio(30.0, 15.0), 2.0);
        assert_eq!(event_ratio(1e9, 1.0), MAX_EVENT_RATIO);
        assert_eq!(event_ratio(5.0, 0.0), 0.0);
    }

    #[test]
    fn events_aggregate_per_pair_with_dense_ids_in_id_order() {
        // user 70 watched item 5 twice (half, then full), user -3 watched item 9.
        let f = build(&[70, -3, 70], &[5, 9, 5], &[5.0, 1.0, 10.0], &[10.0, 10.0, 10.0], 2.0);
        assert_eq!(f.user_ids, vec![-3, 70]);
        assert_eq!(f.item_ids, vec![5, 9]);
        assert_eq!(f.data.nnz(), 2);
        let (items, conf, pref) = f.data.user_row(1);
        assert_eq!((items, conf, pref), (&[0u32][..], &[1.0 + 2.0 * 1.5][..], &[1.0f32][..]));
        assert_eq!(f.popularity, vec![1.0, 1.0]);
    }
}
