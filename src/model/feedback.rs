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

use std::collections::TryReserveError;

use rayon::prelude::*;

use super::factors::mix64;
use super::interactions::Interactions;
use super::memory::filled;

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
// f64 -> f32 on purpose: computed in f64, rounded once to the stored f32 precision.
#[allow(clippy::cast_possible_truncation)]
pub fn missing_weights(popularity: &[f32], exponent: f64) -> Vec<f32> {
    if exponent == 0.0 || popularity.is_empty() {
        return vec![1.0; popularity.len()];
    }
    let raw: Vec<f64> = popularity
        .iter()
        // Every item of a model has at least one viewer; the floor keeps a negative
        // exponent finite for hand-made inputs.
        .map(|&p| f64::from(p.max(1.0)).powf(exponent))
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
    // f64 -> f32 on purpose: computed in f64, rounded once to the stored f32 precision.
    #[allow(clippy::cast_possible_truncation)]
    pub fn watch_confidence(&self, ratio: f64) -> f32 {
        let r = ratio.clamp(0.0, MAX_PAIR_RATIO);
        let f = match self.confidence {
            Confidence::Binary => 1.0,
            Confidence::Linear => r,
            Confidence::Log => r.ln_1p(),
            Confidence::Ratio => return (f64::from(self.alpha) * r) as f32,
        };
        (1.0 + f64::from(self.alpha) * f) as f32
    }

    /// Confidence of a pair that was only skipped, with summed skip weight `skips` (p = 0).
    // f64 -> f32 on purpose: computed in f64, rounded once to the stored f32 precision.
    #[allow(clippy::cast_possible_truncation)]
    pub fn skip_confidence(&self, skips: f64) -> f32 {
        (1.0 + f64::from(self.skip_weight) * skips.clamp(0.0, MAX_SKIPS)) as f32
    }

    /// Recency weight of an event at `ts` when the newest event is at `newest`.
    pub fn recency_at(&self, newest: i64, ts: i64) -> f64 {
        // In i128: the difference of any two i64 is exact there (in i64 it can overflow,
        // e.g. ts = i64::MIN), and converts to the same f64 as the i64 one when that fits.
        #[allow(clippy::cast_precision_loss)]
        let age = (i128::from(newest) - i128::from(ts)) as f64;
        self.recency(age)
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
    /// Per user (dense order): [`events_digest`] of their events, when the events were
    /// pushed with their ids ([`EventSink::push_identified`]); else empty.
    pub user_digests: Vec<u64>,
}

/// What one event adds to its user's digest: a hash of its event id and item id.
pub fn event_digest(event_id: i64, item_id: i64) -> u64 {
    mix64(event_id.cast_unsigned() ^ mix64(item_id.cast_unsigned()))
}

/// A digest of a user's events, (event id, item id) each: the wrapping sum of their
/// [`event_digest`]s, so the same set gives the same digest in any order. Serving
/// compares it with the one the refit stored to know whether the refit saw exactly the
/// user's current events, whatever their rowids.
pub fn events_digest(events: impl IntoIterator<Item = (i64, i64)>) -> u64 {
    events.into_iter().fold(0u64, |sum, (id, item)| {
        sum.wrapping_add(event_digest(id, item))
    })
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

/// Builds the feedback, with recency measured from `newest` (see [`newest_ts`]): the
/// events through an [`EventSink`]. Runs on the current rayon pool; the result does not
/// depend on its size.
pub fn build(events: &Events<'_>, params: &FeedbackParams, newest: i64) -> Feedback {
    let n = events.user_ids.len();
    let mut sink = EventSink::new(params, n);
    for e in 0..n {
        sink.push(
            events.user_ids[e],
            events.item_ids[e],
            events.watch_time[e],
            events.duration[e],
            events.ts[e],
        );
    }
    sink.finish(newest)
}

/// Which buffer could not be allocated, and its size in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfMemory {
    pub what: &'static str,
    pub bytes: u64,
}

/// `Err(OutOfMemory)` for a refused reservation of `count` `T`s.
fn refused<T>(what: &'static str, count: usize) -> impl FnOnce(TryReserveError) -> OutOfMemory {
    move |_| OutOfMemory {
        what,
        bytes: (count as u64).saturating_mul(std::mem::size_of::<T>() as u64),
    }
}

/// Marks a skip in [`EventSink`]'s per-event values (the sign bit; see there).
const SKIP: f64 = -1.0;

/// Ids → dense indices in first-seen order: open addressing, linear probing, load
/// factor at most 1/2 (a refit maps every event's two ids as it reads them).
struct IdMap {
    /// (id, index); index `u32::MAX` = empty slot.
    slots: Vec<(i64, u32)>,
    shift: u32,
    /// Ids in first-seen order.
    ids: Vec<i64>,
    /// The last id looked up, and its index (events often repeat a user).
    last: Option<(i64, u32)>,
}

impl IdMap {
    fn new() -> Self {
        IdMap {
            slots: vec![(0, u32::MAX); 1024],
            shift: 64 - 10,
            ids: Vec::new(),
            last: None,
        }
    }

    // The hash's top bits: `shift` leaves fewer bits than the slot index needs.
    #[allow(clippy::cast_possible_truncation)]
    #[inline]
    fn slot(&self, id: i64) -> usize {
        (id.cast_unsigned().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    // Indices below u32::MAX: fewer distinct ids than that (the map would need > 100 GB).
    #[allow(clippy::cast_possible_truncation)]
    #[inline]
    fn index(&mut self, id: i64) -> u32 {
        if let Some((last, index)) = self.last {
            if last == id {
                return index;
            }
        }
        let mask = self.slots.len() - 1;
        let mut at = self.slot(id);
        let index = loop {
            let (key, index) = self.slots[at];
            if index == u32::MAX {
                let index = self.ids.len() as u32;
                self.slots[at] = (id, index);
                self.ids.push(id);
                if self.ids.len() * 2 > self.slots.len() {
                    self.grow();
                }
                break index;
            }
            if key == id {
                break index;
            }
            at = (at + 1) & mask;
        };
        self.last = Some((id, index));
        index
    }

    // Indices below u32::MAX: fewer distinct ids than that (the map would need > 100 GB).
    #[allow(clippy::cast_possible_truncation)]
    #[cold]
    fn grow(&mut self) {
        let size = self.slots.len() * 2;
        self.slots = vec![(0, u32::MAX); size];
        self.shift -= 1;
        let mask = size - 1;
        for (index, &id) in self.ids.iter().enumerate() {
            let mut at = self.slot(id);
            while self.slots[at].1 != u32::MAX {
                at = (at + 1) & mask;
            }
            self.slots[at] = (id, index as u32);
        }
    }

    /// The distinct ids ascending, and for each first-seen index its rank among them.
    // Indices below u32::MAX: fewer distinct ids than that (the map would need > 100 GB).
    #[allow(clippy::cast_possible_truncation)]
    fn into_sorted(self) -> (Vec<i64>, Vec<u32>) {
        let mut order: Vec<u32> = (0..self.ids.len() as u32).collect();
        order.sort_unstable_by_key(|&k| self.ids[k as usize]);
        let mut rank = vec![0u32; order.len()];
        for (r, &k) in order.iter().enumerate() {
            rank[k as usize] = r as u32;
        }
        let sorted = order.iter().map(|&k| self.ids[k as usize]).collect();
        (sorted, rank)
    }
}

/// Builds [`Feedback`] from events pushed one at a time, in event order (a refit streams
/// them from SQL straight into it, with no column buffers): each event is kept as 16
/// bytes (dense user and item index, and its watch ratio, or `SKIP`; plus its `ts`
/// with recency decay on). [`EventSink::finish`] then aggregates them per (user, item)
/// pair in event order, so the sums are those of the definition, bit for bit.
pub struct EventSink<'p> {
    params: &'p FeedbackParams,
    users: IdMap,
    items: IdMap,
    user: Vec<u32>,
    item: Vec<u32>,
    /// Per event: the watch ratio (`>= +0.0`) of a watch, [`SKIP`] for a skip.
    value: Vec<f64>,
    /// Per event `ts`, kept only when recency decay is on.
    ts: Vec<i64>,
    newest: Option<i64>,
    /// Per user (first-seen order): the digest of their events (see
    /// [`EventSink::push_identified`]).
    digests: Vec<u64>,
}

impl<'p> EventSink<'p> {
    /// `capacity`: the expected number of events (a hint: reserved if the allocator
    /// agrees, never a failure; the buffers grow as needed anyway).
    pub fn new(params: &'p FeedbackParams, capacity: usize) -> Self {
        fn reserved<T>(n: usize) -> Vec<T> {
            let mut v = Vec::new();
            let _ = v.try_reserve_exact(n);
            v
        }
        let recency = params.half_life_days > 0.0;
        EventSink {
            params,
            users: IdMap::new(),
            items: IdMap::new(),
            user: reserved(capacity),
            item: reserved(capacity),
            value: reserved(capacity),
            ts: reserved(if recency { capacity } else { 0 }),
            newest: None,
            digests: Vec::new(),
        }
    }

    #[inline]
    pub fn push(&mut self, user_id: i64, item_id: i64, watch_time: f64, duration: f64, ts: i64) {
        self.user.push(self.users.index(user_id));
        self.item.push(self.items.index(item_id));
        self.value
            .push(if self.params.is_skip(watch_time, duration) {
                SKIP
            } else {
                // `+ 0.0` turns a -0.0 ratio into +0.0 (the sign bit marks skips); the pair's
                // sum, started at +0.0, is the same either way.
                event_ratio(watch_time, duration) + 0.0
            });
        if self.params.half_life_days > 0.0 {
            self.ts.push(ts);
        }
        self.newest = Some(self.newest.map_or(ts, |n| n.max(ts)));
    }

    /// Makes room for `additional` more events (and as many new ids), so that the next
    /// `additional` pushes do not grow the event buffers: the allocator's refusal is an
    /// error here, where a growing push would abort. The id maps' slot tables still grow
    /// as they fill (a few bytes per distinct id, inside the caller's estimate).
    ///
    /// # Errors
    /// When a buffer cannot grow.
    pub fn try_reserve(&mut self, additional: usize) -> Result<(), OutOfMemory> {
        let events = self.user.len().saturating_add(additional);
        self.user
            .try_reserve(additional)
            .map_err(refused::<u32>("the events' user indices", events))?;
        self.item
            .try_reserve(additional)
            .map_err(refused::<u32>("the events' item indices", events))?;
        self.value
            .try_reserve(additional)
            .map_err(refused::<f64>("the events' watch ratios", events))?;
        if self.params.half_life_days > 0.0 {
            self.ts
                .try_reserve(additional)
                .map_err(refused::<i64>("the events' timestamps", events))?;
        }
        let users = self.digests.len().saturating_add(additional);
        self.digests
            .try_reserve(additional)
            .map_err(refused::<u64>("the users' digests", users))?;
        for map in [&mut self.users, &mut self.items] {
            let ids = map.ids.len().saturating_add(additional);
            map.ids
                .try_reserve(additional)
                .map_err(refused::<i64>("the distinct ids", ids))?;
        }
        Ok(())
    }

    /// The bytes the sink holds: its event buffers' capacity and its id maps.
    pub fn bytes(&self) -> u64 {
        let events = self.user.capacity() * 4
            + self.item.capacity() * 4
            + self.value.capacity() * 8
            + self.ts.capacity() * 8
            + self.digests.capacity() * 8;
        let maps = [&self.users, &self.items]
            .iter()
            .map(|m| m.slots.capacity() * 16 + m.ids.capacity() * 8)
            .sum::<usize>();
        (events + maps) as u64
    }

    /// The bytes the events pushed so far need (16 per event, 24 with recency decay, and
    /// the id maps), whatever the buffers' spare capacity.
    pub fn needed_bytes(&self) -> u64 {
        let per_event = if self.params.half_life_days > 0.0 {
            24
        } else {
            16
        };
        let maps = [&self.users, &self.items]
            .iter()
            .map(|m| m.slots.len() * 16 + m.ids.len() * 8)
            .sum::<usize>();
        (self.user.len() * per_event + self.digests.len() * 8 + maps) as u64
    }

    /// Distinct users and items pushed so far.
    pub fn distinct(&self) -> (usize, usize) {
        (self.users.ids.len(), self.items.ids.len())
    }

    /// [`EventSink::push`] of the event with id `event_id`, which also goes into its
    /// user's digest ([`Feedback::user_digests`]).
    #[inline]
    pub fn push_identified(
        &mut self,
        event_id: i64,
        user_id: i64,
        item_id: i64,
        watch_time: f64,
        duration: f64,
        ts: i64,
    ) {
        self.push(user_id, item_id, watch_time, duration, ts);
        let user = self.user.last().map_or(0, |&u| u as usize);
        if user >= self.digests.len() {
            self.digests.resize(user + 1, 0);
        }
        self.digests[user] = self.digests[user].wrapping_add(event_digest(event_id, item_id));
    }

    #[cfg(test)]
    /// Events pushed so far.
    pub fn len(&self) -> usize {
        self.user.len()
    }

    pub fn is_empty(&self) -> bool {
        self.user.is_empty()
    }

    /// The newest `ts` pushed (0 when none): "now" for recency decay, as [`newest_ts`].
    pub fn newest_ts(&self) -> i64 {
        self.newest.unwrap_or(0)
    }

    /// The feedback, with recency measured from `newest`. Runs on the current rayon
    /// pool; the result does not depend on its size (each pair is summed by one task, in
    /// event order).
    ///
    /// # Panics
    /// When memory runs out (see [`Self::try_finish`]).
    pub fn finish(self, newest: i64) -> Feedback {
        match self.try_finish(newest) {
            Ok(feedback) => feedback,
            Err(e) => panic!("out of memory: {} ({} bytes)", e.what, e.bytes),
        }
    }

    /// [`Self::finish`]; the allocator's refusal of one of the large buffers (per event or
    /// per pair) is an error.
    ///
    /// # Errors
    /// When one of those buffers cannot be allocated.
    pub fn try_finish(self, newest: i64) -> Result<Feedback, OutOfMemory> {
        let EventSink {
            params,
            users,
            items,
            mut user,
            mut item,
            mut value,
            ts,
            digests,
            ..
        } = self;
        let n = user.len();
        let parallel = n >= PARALLEL_FROM;
        let (user_ids, user_rank) = users.into_sorted();
        let mut user_digests = vec![
            0u64;
            if digests.is_empty() {
                0
            } else {
                user_ids.len()
            }
        ];
        for (first_seen, digest) in digests.into_iter().enumerate() {
            user_digests[user_rank[first_seen] as usize] = digest;
        }
        let (item_ids, item_rank) = items.into_sorted();
        let (n_users, n_items) = (user_ids.len(), item_ids.len());
        let ranks = (&user_rank[..], &item_rank[..]);
        remap_and_decay(
            params,
            newest,
            ranks,
            (&mut user, &mut item, &mut value),
            &ts,
            parallel,
        );
        drop(ts);
        let (event_ptr, mut order) = group_by_user(&user, n_users)?;
        drop(user);
        let mut event_rows = split_rows(&mut order, &event_ptr);
        let pairs = sort_rows_by_item(&item, &mut event_rows, parallel);
        let mut user_ptr = vec![0usize; n_users + 1];
        for u in 0..n_users {
            user_ptr[u + 1] = user_ptr[u] + pairs[u];
        }
        let (user_conf, watched_out) = aggregate_pairs(
            params,
            (&item, &value),
            &mut event_rows,
            &user_ptr,
            parallel,
        )?;
        drop(event_rows);
        drop((item, value));
        let user_items = compact_rows(order, &event_ptr, &pairs, &user_ptr);
        let mut user_pref: Vec<f32> = filled(watched_out.len(), 0.0)
            .map_err(refused::<f32>("the pairs' preferences", watched_out.len()))?;
        for (p, &w) in user_pref.iter_mut().zip(&watched_out) {
            *p = if w { 1.0 } else { 0.0 };
        }
        drop(watched_out);
        let (popularity, skipped_pairs) = watched_popularity(&user_items, &user_pref, n_items);
        let nnz = user_items.len();
        let mut data = Interactions::try_from_user_rows(
            n_users, n_items, user_ptr, user_items, user_conf, user_pref,
        )
        .map_err(refused::<[u32; 3]>("the interaction matrix by item", nnz))?;
        data.missing_weight = missing_weights(&popularity, params.popularity_exponent);
        Ok(Feedback {
            user_ids,
            item_ids,
            data,
            popularity,
            skipped_pairs,
            user_digests,
        })
    }
}

/// [`EventSink::finish`], step 1: dense indices in id order (`ranks`: each first-seen
/// index's rank, users then items); with recency (`ts` not empty), each value becomes its
/// event's mass (w·r for a watch, −w for a skip: the sign bit still marks skips, even
/// when w underflows to 0).
fn remap_and_decay(
    params: &FeedbackParams,
    newest: i64,
    (user_rank, item_rank): (&[u32], &[u32]),
    (user, item, value): (&mut [u32], &mut [u32], &mut [f64]),
    ts: &[i64],
    parallel: bool,
) {
    let remap = |u: &mut u32, i: &mut u32| {
        *u = user_rank[*u as usize];
        *i = item_rank[*i as usize];
    };
    let decay = |v: &mut f64, t: i64| {
        let w = params.recency_at(newest, t);
        *v = if v.is_sign_negative() { -w } else { w * *v };
    };
    if parallel {
        user.par_iter_mut()
            .zip(item.par_iter_mut())
            .for_each(|(u, i)| remap(u, i));
        if !ts.is_empty() {
            value
                .par_iter_mut()
                .zip(ts.par_iter())
                .for_each(|(v, &t)| decay(v, t));
        }
    } else {
        user.iter_mut()
            .zip(item.iter_mut())
            .for_each(|(u, i)| remap(u, i));
        value.iter_mut().zip(ts).for_each(|(v, &t)| decay(v, t));
    }
}

/// [`EventSink::finish`], step 2: events grouped by user, in event order (a stable
/// counting sort of their indices): the CSR pointers over users, and the event indices.
// Event indices below u32::MAX: a model's entries are u32-indexed (Interactions).
#[allow(clippy::cast_possible_truncation)]
fn group_by_user(user: &[u32], n_users: usize) -> Result<(Vec<usize>, Vec<u32>), OutOfMemory> {
    let mut event_ptr = vec![0usize; n_users + 1];
    for &u in user {
        event_ptr[u as usize + 1] += 1;
    }
    for u in 0..n_users {
        event_ptr[u + 1] += event_ptr[u];
    }
    let mut order =
        filled(user.len(), 0u32).map_err(refused::<u32>("the events' order", user.len()))?;
    let mut next = event_ptr.clone();
    for (e, &u) in user.iter().enumerate() {
        order[next[u as usize]] = e as u32;
        next[u as usize] += 1;
    }
    Ok((event_ptr, order))
}

/// [`EventSink::finish`], step 3: each user's events by item, ties in event order;
/// returns each user's number of distinct items (pairs).
fn sort_rows_by_item(item: &[u32], event_rows: &mut [&mut [u32]], parallel: bool) -> Vec<usize> {
    let sort_row = |row: &mut [u32]| -> usize {
        row.sort_unstable_by_key(|&e| u64::from(item[e as usize]) << 32 | u64::from(e));
        1 + row
            .windows(2)
            .filter(|w| item[w[0] as usize] != item[w[1] as usize])
            .count()
            - usize::from(row.is_empty())
    };
    if parallel {
        event_rows.par_iter_mut().map(|r| sort_row(r)).collect()
    } else {
        event_rows.iter_mut().map(|r| sort_row(r)).collect()
    }
}

/// [`EventSink::finish`], step 4: each pair's confidence and whether it was watched, from
/// R = Σ w·r over its watches, S = Σ w over its skips, in event order.
/// Memory: a pair's item index overwrites the user's own slice of `order` (pair `k` of a
/// row is written only after its events, all at positions >= k, were read), so that the
/// peak holds the events plus 5 bytes per pair, not 12.
fn aggregate_pairs(
    params: &FeedbackParams,
    (item, value): (&[u32], &[f64]),
    event_rows: &mut [&mut [u32]],
    user_ptr: &[usize],
    parallel: bool,
) -> Result<(Vec<f32>, Vec<bool>), OutOfMemory> {
    let nnz = user_ptr[user_ptr.len() - 1];
    let mut user_conf = filled(nnz, 0f32).map_err(refused::<f32>("the pairs' confidences", nnz))?;
    let mut watched_out = filled(nnz, false).map_err(refused::<bool>("the pairs", nnz))?;
    let aggregate = |events: &mut [u32], (conf_out, watched): (&mut [f32], &mut [bool])| {
        let mut out = 0;
        let mut at = 0;
        while at < events.len() {
            let i = item[events[at] as usize];
            let (mut w, mut ratio, mut skips) = (false, 0.0, 0.0);
            while at < events.len() && item[events[at] as usize] == i {
                let v = value[events[at] as usize];
                if v.is_sign_negative() {
                    skips += -v;
                } else {
                    w = true;
                    ratio += v;
                }
                at += 1;
            }
            conf_out[out] = if w {
                params.watch_confidence(ratio)
            } else {
                params.skip_confidence(skips)
            };
            watched[out] = w;
            events[out] = i;
            out += 1;
        }
    };
    {
        let out_rows: Vec<(&mut [f32], &mut [bool])> = split_rows(&mut user_conf, user_ptr)
            .into_iter()
            .zip(split_rows(&mut watched_out, user_ptr))
            .collect();
        if parallel {
            event_rows
                .par_iter_mut()
                .zip(out_rows)
                .for_each(|(events, out)| aggregate(events, out));
        } else {
            event_rows
                .iter_mut()
                .zip(out_rows)
                .for_each(|(events, out)| aggregate(events, out));
        }
    }
    Ok((user_conf, watched_out))
}

/// [`EventSink::finish`], step 5: each row's items (written by [`aggregate_pairs`] at the
/// front of its events' slot) moved to the front of its pair slot (rows only move left:
/// `user_ptr[u] <= event_ptr[u]`), then the spare capacity back to the allocator.
fn compact_rows(
    mut order: Vec<u32>,
    event_ptr: &[usize],
    pairs: &[usize],
    user_ptr: &[usize],
) -> Vec<u32> {
    for u in 0..pairs.len() {
        order.copy_within(event_ptr[u]..event_ptr[u] + pairs[u], user_ptr[u]);
    }
    order.truncate(user_ptr[pairs.len()]);
    order.shrink_to_fit();
    order
}

/// [`EventSink::finish`], step 6: popularity counts viewers who watched, not those who
/// swiped it away; also the number of skipped-only pairs.
// Exactly 1.0 on purpose: the preference of a watched pair is set to 1.0, not computed.
#[allow(clippy::float_cmp)]
fn watched_popularity(user_items: &[u32], user_pref: &[f32], n_items: usize) -> (Vec<f32>, usize) {
    let mut popularity = vec![0f32; n_items];
    let mut skipped_pairs = 0;
    for (&i, &p) in user_items.iter().zip(user_pref) {
        if p == 1.0 {
            popularity[i as usize] += 1.0;
        } else {
            skipped_pairs += 1;
        }
    }
    (popularity, skipped_pairs)
}

/// `data` cut into the rows of a CSR pointer array (`ptr[0] = 0`, `ptr.last() = len`).
fn split_rows<'a, T>(mut data: &'a mut [T], ptr: &[usize]) -> Vec<&'a mut [T]> {
    let mut rows = Vec::with_capacity(ptr.len().saturating_sub(1));
    for w in ptr.windows(2) {
        let (row, rest) = std::mem::take(&mut data).split_at_mut(w[1] - w[0]);
        rows.push(row);
        data = rest;
    }
    rows
}

#[cfg(test)]
// Tests: small generated data (every index and count far inside its type), and floats
// compared bit for bit on purpose.
#[allow(
    clippy::float_cmp,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]
mod tests {
    use super::*;
    use crate::model::interactions::Entry;

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
            ids.iter()
                .map(|id| distinct_index(&distinct, *id))
                .collect()
        } else {
            ids.par_iter()
                .map(|id| distinct_index(&distinct, *id))
                .collect()
        };
        (distinct, index)
    }

    fn distinct_index(distinct: &[i64], id: i64) -> u32 {
        distinct.binary_search(&id).expect("id present") as u32
    }

    /// The previous implementation (stable sorts of all events by pair key): the
    /// definition the streaming [`EventSink`] must reproduce bit for bit.
    fn build_by_sorting(events: &Events<'_>, params: &FeedbackParams, newest: i64) -> Feedback {
        let (users, user_index) = dense_ids(events.user_ids);
        let (items, item_index) = dense_ids(events.item_ids);
        // Per event: pair key, whether it is a skip, its mass (w·r for a watch, w for a skip).
        let event = |e: usize| {
            let key = u64::from(user_index[e]) << 32 | u64::from(item_index[e]);
            let weight = params.recency_at(newest, events.ts[e]);
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
            user_digests: Vec::new(),
        }
    }

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

    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *state >> 33
    }

    /// The streaming builder against the sort-based definition, on random logs with
    /// repeated pairs, skips, odd values and recency, below and above `PARALLEL_FROM`.
    #[test]
    fn streaming_build_equals_the_sorting_definition() {
        let mut s = 5u64;
        for n in [0, 1, 7, 300, 5000, PARALLEL_FROM + 777, 60_000] {
            let user_ids: Vec<i64> = (0..n)
                .map(|_| {
                    let r = lcg(&mut s) % 400;
                    if r.is_multiple_of(7) {
                        -(r as i64) * 1_000_000_007
                    } else {
                        r as i64 * 31
                    }
                })
                .collect();
            let item_ids: Vec<i64> = (0..n)
                .map(|_| {
                    let r = (lcg(&mut s) % 1000) as i64;
                    r * r / 997 - 5 + if r % 11 == 0 { i64::MAX - 1000 } else { 0 }
                })
                .collect();
            let watch: Vec<f64> = (0..n)
                .map(|_| match lcg(&mut s) % 13 {
                    0 => 0.0,
                    1 => -0.0,
                    2 => 1e9,
                    r => r as f64 * 1.37 + (lcg(&mut s) % 100) as f64 / 7.0,
                })
                .collect();
            let duration: Vec<f64> = (0..n)
                .map(|_| match lcg(&mut s) % 29 {
                    0 => 0.0,
                    r => 3.0 + r as f64,
                })
                .collect();
            let ts: Vec<i64> = (0..n)
                .map(|_| 1_700_000_000 + (lcg(&mut s) % 5_000_000) as i64)
                .collect();
            let e = Events {
                user_ids: &user_ids,
                item_ids: &item_ids,
                watch_time: &watch,
                duration: &duration,
                ts: &ts,
            };
            let variants = [
                FeedbackParams::default(),
                FeedbackParams {
                    confidence: Confidence::Ratio,
                    alpha: 2.0,
                    skip_ratio: 0.3,
                    popularity_exponent: 0.5,
                    ..Default::default()
                },
                FeedbackParams {
                    confidence: Confidence::Log,
                    skip_seconds: 4.0,
                    skip_weight: 2.5,
                    half_life_days: 3.0,
                    ..Default::default()
                },
                FeedbackParams {
                    skip_ratio: 0.5,
                    half_life_days: 1e-6,
                    ..Default::default()
                },
            ];
            for params in &variants {
                let newest = newest_ts(&e);
                let want = build_by_sorting(&e, params, newest);
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(3)
                    .build()
                    .unwrap();
                let got = pool.install(|| build(&e, params, newest));
                assert_eq!(got.user_ids, want.user_ids, "n {n} {params:?}");
                assert_eq!(got.item_ids, want.item_ids);
                assert_eq!(got.popularity, want.popularity);
                assert_eq!(got.skipped_pairs, want.skipped_pairs);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                let (g, w) = (&got.data, &want.data);
                assert_eq!(
                    (&g.user_ptr, &g.user_items, &g.item_ptr, &g.item_users),
                    (&w.user_ptr, &w.user_items, &w.item_ptr, &w.item_users)
                );
                assert_eq!(bits(&g.user_conf), bits(&w.user_conf), "n {n} {params:?}");
                assert_eq!(bits(&g.user_pref), bits(&w.user_pref));
                assert_eq!(bits(&g.item_conf), bits(&w.item_conf));
                assert_eq!(bits(&g.item_pref), bits(&w.item_pref));
                assert_eq!(bits(&g.missing_weight), bits(&w.missing_weight));
                let mut sink = EventSink::new(params, 0);
                for k in 0..n {
                    sink.push(user_ids[k], item_ids[k], watch[k], duration[k], ts[k]);
                }
                assert_eq!((sink.len(), sink.newest_ts()), (n, newest));
            }
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
    fn recency_of_extreme_timestamps_does_not_overflow() {
        let params = FeedbackParams {
            half_life_days: 1.0,
            ..FeedbackParams::default()
        };
        assert_eq!(params.recency_at(i64::MAX, i64::MIN), 0.0);
        assert_eq!(params.recency_at(1_700_000_000, i64::MIN), 0.0);
        assert_eq!(params.recency_at(i64::MAX, i64::MAX), 1.0);
        assert_eq!(params.recency_at(86_400, 0), 0.5);
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
