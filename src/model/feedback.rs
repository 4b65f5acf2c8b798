//! Watch events → confidence-weighted implicit feedback.
//!
//! Each event has a watch ratio `r = min(watch_time / duration, MAX_EVENT_RATIO)` and a
//! recency weight `w` (1, or `0.5^(age / half_life)` with the age measured from the
//! newest event, never from the wall clock, so a refit is reproducible).
//!
//! An event is a **skip** (a swipe-away) when the skip rule is on and
//! `r < skip_ratio` or `watch_time < min(skip_seconds, duration)`.
//!
//! For each (user, item) pair, with `R = Σ w·r` over its non-skip events and
//! `S = Σ w` over its skips:
//!
//! ```text
//! some non-skip event:  p = 1, c = 1 + alpha · f(R)
//!     binary:  f(R) = 1
//!     linear:  f(R) = min(R, MAX_PAIR_RATIO)
//!     log:     f(R) = ln(1 + min(R, MAX_PAIR_RATIO))
//!     ratio:   c = alpha · min(R, MAX_PAIR_RATIO)   (no "1 +": below 1 when R < 1/alpha)
//! only skips:           p = 0, c = 1 + skip_weight · min(S, MAX_SKIPS)
//! ```
//!
//! Unobserved pairs keep p = 0 with weight `w_i` (see [`super::als`]), so a skipped item
//! weighs more as a "no" than an item never shown. With the skip rule off every event
//! counts as a watch.
//!
//! Missing-data weights (He et al. 2016, eALS): with `pop_i` the number of distinct users
//! who watched item `i` (a pair with a non-skip event; swipe-aways are not views) and
//! `ω = popularity_exponent`,
//!
//! ```text
//! w_i = pop_i^ω / mean_j(pop_j^ω)
//! ```
//!
//! so the mean weight is 1 (λ and alpha keep their meaning), a popular video the user
//! never watched counts as a stronger "no" than an obscure one, and `ω = 0` gives
//! `w_i = 1` exactly (uniform weighting).
//!
//! Ids are mapped to dense indices in ascending id order, so index order is id order
//! and every tie broken "by index" is broken by id.

use rayon::prelude::*;

use super::interactions::{Entry, Interactions};

/// Largest watch ratio one event contributes (a video left looping).
pub const MAX_EVENT_RATIO: f64 = 10.0;
/// Largest summed watch ratio of one (user, item) pair.
pub const MAX_PAIR_RATIO: f64 = 10.0;
/// Largest summed skip weight of one pair.
pub const MAX_SKIPS: f64 = 10.0;

/// How a pair's summed watch ratio becomes confidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confidence {
    Binary,
    Linear,
    Log,
    /// c = alpha · R with no floor of 1: a barely watched video (R < 1/alpha) weighs
    /// less than an unseen one, a soft "no" (the scale `implicit` reads from its matrix).
    Ratio,
}

impl Confidence {
    pub fn name(self) -> &'static str {
        match self {
            Confidence::Binary => "binary",
            Confidence::Linear => "linear",
            Confidence::Log => "log",
            Confidence::Ratio => "ratio",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [
            Confidence::Binary,
            Confidence::Linear,
            Confidence::Log,
            Confidence::Ratio,
        ]
        .into_iter()
        .find(|c| c.name() == name)
    }
}

/// The feedback options of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedbackParams {
    pub confidence: Confidence,
    pub alpha: f32,
    /// 0: off.
    pub skip_ratio: f64,
    /// 0: off.
    pub skip_seconds: f64,
    pub skip_weight: f32,
    /// 0: off.
    pub half_life_days: f64,
    /// `ω` of the missing-data weights (0: uniform).
    pub popularity_exponent: f64,
}

impl Default for FeedbackParams {
    fn default() -> Self {
        FeedbackParams {
            confidence: Confidence::Linear,
            alpha: 10.0,
            skip_ratio: 0.0,
            skip_seconds: 0.0,
            skip_weight: 1.0,
            half_life_days: 0.0,
            popularity_exponent: 0.0,
        }
    }
}

/// The missing-data weights `w_i = pop_i^ω / mean_j(pop_j^ω)` (f64, summed in item
/// order, then rounded to f32): what a refit trains with and what fold-in recomputes
/// from the stored popularity. All exactly 1.0 when `ω = 0`, and when the mean is not
/// a positive finite number (an empty or degenerate popularity).
pub fn missing_weights(popularity: &[f32], exponent: f64) -> Vec<f32> {
    if exponent == 0.0 || popularity.is_empty() {
        return vec![1.0; popularity.len()];
    }
    let raw: Vec<f64> = popularity
        .iter()
        // Every item of a model has at least one viewer; the floor keeps a negative
        // exponent finite for hand-made inputs.
        .map(|&p| (p.max(1.0) as f64).powf(exponent))
        .collect();
    let mean = raw.iter().sum::<f64>() / raw.len() as f64;
    if !(mean.is_finite() && mean > 0.0) {
        return vec![1.0; popularity.len()];
    }
    raw.iter().map(|&r| (r / mean) as f32).collect()
}

impl FeedbackParams {
    /// Whether an event is a skip.
    pub fn is_skip(&self, watch_time: f64, duration: f64) -> bool {
        let ratio = event_ratio(watch_time, duration);
        (self.skip_ratio > 0.0 && ratio < self.skip_ratio)
            || (self.skip_seconds > 0.0 && watch_time < self.skip_seconds.min(duration))
    }

    /// Confidence of a pair with summed non-skip watch ratio `ratio` (p = 1).
    pub fn watch_confidence(&self, ratio: f64) -> f32 {
        let r = ratio.clamp(0.0, MAX_PAIR_RATIO);
        let f = match self.confidence {
            Confidence::Binary => 1.0,
            Confidence::Linear => r,
            Confidence::Log => r.ln_1p(),
            Confidence::Ratio => return (self.alpha as f64 * r) as f32,
        };
        (1.0 + self.alpha as f64 * f) as f32
    }

    /// Confidence of a pair that was only skipped, with summed skip weight `skips` (p = 0).
    pub fn skip_confidence(&self, skips: f64) -> f32 {
        (1.0 + self.skip_weight as f64 * skips.clamp(0.0, MAX_SKIPS)) as f32
    }

    /// Recency weight of an event `age_seconds` older than the newest one.
    pub fn recency(&self, age_seconds: f64) -> f64 {
        if self.half_life_days > 0.0 {
            0.5f64.powf(age_seconds.max(0.0) / (self.half_life_days * 86_400.0))
        } else {
            1.0
        }
    }
}

/// Events mapped to dense indices and aggregated into confidences.
#[derive(Debug)]
pub struct Feedback {
    /// Dense user index → user id, ascending.
    pub user_ids: Vec<i64>,
    /// Dense item index → item id, ascending.
    pub item_ids: Vec<i64>,
    /// One entry per distinct (user, item) pair.
    pub data: Interactions,
    /// Per item: number of distinct users who watched it (a non-skip event).
    pub popularity: Vec<f32>,
    /// Pairs that were only skipped (preference 0).
    pub skipped_pairs: usize,
}

/// The watch ratio one event contributes; 0 for a non-positive duration or a
/// non-finite watch time (the virtual table rejects those; this keeps one bad row from
/// poisoning a refit however it got in).
pub fn event_ratio(watch_time: f64, duration: f64) -> f64 {
    if duration > 0.0 && duration.is_finite() && watch_time.is_finite() {
        (watch_time / duration).clamp(0.0, MAX_EVENT_RATIO)
    } else {
        0.0
    }
}

/// Below this many events, `build` stays on the calling thread: handing a handful of
/// events to the rayon pool costs more than it saves (a fold-in reads ~100).
const PARALLEL_FROM: usize = 16_384;

/// Sorted distinct ids, and each input id's index among them.
fn dense_ids(ids: &[i64]) -> (Vec<i64>, Vec<u32>) {
    let mut distinct = ids.to_vec();
    if ids.len() < PARALLEL_FROM {
        distinct.sort_unstable();
    } else {
        distinct.par_sort_unstable();
    }
    distinct.dedup();
    let index = if ids.len() < PARALLEL_FROM {
        ids.iter().map(|id| distinct_index(&distinct, id)).collect()
    } else {
        ids.par_iter()
            .map(|id| distinct_index(&distinct, id))
            .collect()
    };
    (distinct, index)
}

fn distinct_index(distinct: &[i64], id: &i64) -> u32 {
    distinct.binary_search(id).expect("id present") as u32
}

/// The event columns a refit reads.
pub struct Events<'a> {
    pub user_ids: &'a [i64],
    pub item_ids: &'a [i64],
    pub watch_time: &'a [f64],
    pub duration: &'a [f64],
    pub ts: &'a [i64],
}

/// The newest `ts` among the events: "now" for recency decay.
pub fn newest_ts(events: &Events<'_>) -> i64 {
    events.ts.iter().copied().max().unwrap_or(0)
}

/// Builds the feedback, with recency measured from `newest` (see [`newest_ts`]). Runs
/// on the current rayon pool; the result does not depend on its size (stable sorts,
/// sequential sums in event order).
pub fn build(events: &Events<'_>, params: &FeedbackParams, newest: i64) -> Feedback {
    let (users, user_index) = dense_ids(events.user_ids);
    let (items, item_index) = dense_ids(events.item_ids);
    // Per event: pair key, whether it is a skip, its mass (w·r for a watch, w for a skip).
    let event = |e: usize| {
        let key = (user_index[e] as u64) << 32 | item_index[e] as u64;
        let weight = params.recency((newest - events.ts[e]) as f64);
        let (watch, duration) = (events.watch_time[e], events.duration[e]);
        if params.is_skip(watch, duration) {
            (key, true, weight)
        } else {
            (key, false, weight * event_ratio(watch, duration))
        }
    };
    let n = events.user_ids.len();
    // Stable sorts: events of one pair stay in event order, so their sums are reproducible.
    let keyed: Vec<(u64, bool, f64)> = if n < PARALLEL_FROM {
        let mut keyed: Vec<_> = (0..n).map(event).collect();
        keyed.sort_by_key(|&(key, _, _)| key);
        keyed
    } else {
        let mut keyed: Vec<_> = (0..n).into_par_iter().map(event).collect();
        keyed.par_sort_by_key(|&(key, _, _)| key);
        keyed
    };

    let mut entries: Vec<Entry> = Vec::new();
    let mut popularity = vec![0f32; items.len()];
    let mut skipped_pairs = 0;
    let mut at = 0;
    while at < keyed.len() {
        let key = keyed[at].0;
        let (mut watched, mut ratio, mut skips) = (false, 0.0, 0.0);
        while at < keyed.len() && keyed[at].0 == key {
            let (_, skip, mass) = keyed[at];
            if skip {
                skips += mass;
            } else {
                watched = true;
                ratio += mass;
            }
            at += 1;
        }
        let (user, item) = ((key >> 32) as u32, key as u32);
        let (confidence, preference) = if watched {
            // Popularity counts viewers who watched, not those who swiped it away.
            popularity[item as usize] += 1.0;
            (params.watch_confidence(ratio), 1.0)
        } else {
            skipped_pairs += 1;
            (params.skip_confidence(skips), 0.0)
        };
        entries.push(Entry {
            user,
            item,
            confidence,
            preference,
        });
    }
    let mut data = Interactions::from_entries(users.len(), items.len(), &entries);
    data.missing_weight = missing_weights(&popularity, params.popularity_exponent);
    Feedback {
        user_ids: users,
        item_ids: items,
        data,
        popularity,
        skipped_pairs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events<'a>(
        u: &'a [i64],
        i: &'a [i64],
        w: &'a [f64],
        d: &'a [f64],
        ts: &'a [i64],
    ) -> Events<'a> {
        Events {
            user_ids: u,
            item_ids: i,
            watch_time: w,
            duration: d,
            ts,
        }
    }

    #[test]
    fn confidence_forms_follow_the_documented_formulas() {
        let mut p = FeedbackParams {
            alpha: 2.0,
            ..Default::default()
        };
        assert_eq!(p.watch_confidence(1.5), 4.0);
        assert_eq!(p.watch_confidence(50.0), 21.0); // capped at MAX_PAIR_RATIO
        p.confidence = Confidence::Log;
        assert_eq!(p.watch_confidence(1.0), (1.0 + 2.0 * 2f64.ln()) as f32);
        p.confidence = Confidence::Ratio;
        assert_eq!(p.watch_confidence(0.25), 0.5);
        assert_eq!(p.watch_confidence(3.0), 6.0);
        p.confidence = Confidence::Binary;
        assert_eq!(p.watch_confidence(0.01), 3.0);
        assert_eq!(p.watch_confidence(7.0), 3.0);
        p.skip_weight = 4.0;
        assert_eq!(p.skip_confidence(2.0), 9.0);
        assert_eq!(p.skip_confidence(100.0), 41.0); // capped at MAX_SKIPS
    }

    #[test]
    fn event_ratio_handles_bad_values() {
        assert_eq!(event_ratio(30.0, 15.0), 2.0);
        assert_eq!(event_ratio(1e9, 1.0), MAX_EVENT_RATIO);
        assert_eq!(event_ratio(5.0, 0.0), 0.0);
        assert_eq!(event_ratio(f64::NAN, 10.0), 0.0);
        assert_eq!(event_ratio(5.0, f64::INFINITY), 0.0);
    }

    #[test]
    fn skip_rule() {
        let off = FeedbackParams::default();
        assert!(!off.is_skip(0.0, 10.0));
        let ratio = FeedbackParams {
            skip_ratio: 0.2,
            ..Default::default()
        };
        assert!(ratio.is_skip(1.9, 10.0));
        assert!(!ratio.is_skip(2.0, 10.0));
        // KuaiRec's short play: less than min(3 s, duration).
        let seconds = FeedbackParams {
            skip_seconds: 3.0,
            ..Default::default()
        };
        assert!(seconds.is_skip(2.9, 60.0));
        assert!(!seconds.is_skip(3.0, 60.0));
        assert!(seconds.is_skip(1.9, 2.0)); // a 2 s video watched 1.9 s
        assert!(!seconds.is_skip(2.0, 2.0)); // ... watched to the end
    }

    #[test]
    fn recency_halves_per_half_life() {
        let p = FeedbackParams {
            half_life_days: 2.0,
            ..Default::default()
        };
        assert_eq!(p.recency(0.0), 1.0);
        assert_eq!(p.recency(2.0 * 86_400.0), 0.5);
        assert_eq!(p.recency(4.0 * 86_400.0), 0.25);
        assert_eq!(FeedbackParams::default().recency(1e9), 1.0);
    }

    #[test]
    fn events_aggregate_per_pair_with_dense_ids_in_id_order() {
        // user 70 watched item 5 twice (half, then full), user -3 watched item 9.
        let p = FeedbackParams {
            alpha: 2.0,
            ..Default::default()
        };
        let f = build(
            &events(
                &[70, -3, 70],
                &[5, 9, 5],
                &[5.0, 1.0, 10.0],
                &[10.0; 3],
                &[0; 3],
            ),
            &p,
            0,
        );
        assert_eq!(f.user_ids, vec![-3, 70]);
        assert_eq!(f.item_ids, vec![5, 9]);
        assert_eq!(f.data.nnz(), 2);
        let (items, conf, pref) = f.data.user_row(1);
        assert_eq!(
            (items, conf, pref),
            (&[0u32][..], &[1.0 + 2.0 * 1.5][..], &[1.0f32][..])
        );
        assert_eq!(f.popularity, vec![1.0, 1.0]);
    }

    #[test]
    fn missing_weights_follow_item_popularity() {
        // Items 10, 20, 30 watched by 4, 1 and 1 distinct users (user 1 twice on item 10).
        let users = [1, 1, 2, 3, 4, 1, 2];
        let items = [10, 10, 10, 10, 10, 20, 30];
        let e = events(&users, &items, &[5.0; 7], &[10.0; 7], &[0; 7]);
        let uniform = build(&e, &FeedbackParams::default(), 0);
        assert_eq!(uniform.popularity, vec![4.0, 1.0, 1.0]);
        assert_eq!(uniform.data.missing_weight, vec![1.0; 3]);
        assert!(uniform.data.uniform_missing_weight());
        let p = |omega| FeedbackParams {
            popularity_exponent: omega,
            ..Default::default()
        };
        // ω = 1: pop / mean(pop) = (4, 1, 1) / 2.
        let f = build(&e, &p(1.0), 0);
        assert_eq!(f.data.missing_weight, vec![2.0, 0.5, 0.5]);
        // ω = 0.5: sqrt(pop) / mean(sqrt(pop)) = (2, 1, 1) / (4/3).
        let f = build(&e, &p(0.5), 0);
        assert_eq!(f.data.missing_weight, vec![1.5, 0.75, 0.75]);
        // ω = 2: (16, 1, 1) / 6.
        let f = build(&e, &p(2.0), 0);
        assert_eq!(
            f.data.missing_weight,
            vec![
                (16.0f64 / 6.0) as f32,
                (1.0f64 / 6.0) as f32,
                (1.0f64 / 6.0) as f32
            ]
        );
        assert_eq!(f.data.missing_weight.len(), f.data.n_items);
        assert_eq!(missing_weights(&[4.0, 1.0, 1.0], 0.0), vec![1.0; 3]);
        assert_eq!(missing_weights(&[], 1.0), Vec::<f32>::new());
        assert_eq!(missing_weights(&[0.0, 0.0], 1.0), vec![1.0; 2]);
    }

    #[test]
    fn skipped_pairs_get_preference_zero_and_watches_win() {
        let p = FeedbackParams {
            alpha: 2.0,
            skip_ratio: 0.1,
            skip_weight: 3.0,
            ..Default::default()
        };
        // user 1: item 1 skipped twice; item 2 skipped then watched fully. Zero watch time is a skip too.
        let f = build(
            &events(
                &[1, 1, 1, 1, 1],
                &[1, 1, 2, 2, 3],
                &[0.5, 0.0, 0.2, 10.0, 0.0],
                &[10.0; 5],
                &[0; 5],
            ),
            &p,
            0,
        );
        let (items, conf, pref) = f.data.user_row(0);
        assert_eq!(items, &[0, 1, 2]);
        assert_eq!(pref, &[0.0, 1.0, 0.0]);
        assert_eq!(conf, &[1.0 + 3.0 * 2.0, 1.0 + 2.0 * 1.0, 1.0 + 3.0]);
        assert_eq!(f.skipped_pairs, 2);
    }

    #[test]
    fn recency_weights_watches_by_age_from_the_newest_event() {
        let p = FeedbackParams {
            alpha: 1.0,
            half_life_days: 1.0,
            ..Default::default()
        };
        let day = 86_400;
        let ts = [0, day];
        let e = events(&[1, 1], &[1, 2], &[10.0, 10.0], &[10.0, 10.0], &ts);
        let f = build(&e, &p, newest_ts(&e));
        let (_, conf, _) = f.data.user_row(0);
        assert_eq!(conf, &[1.5, 2.0]);
    }
}
