//! A fitted model decoded for serving: ids, factors, norms, popularity and the item
//! Gramian in memory, so that `recommend()` and `similar_items()` never re-read factor
//! blobs. Pure Rust: built from a [`StoredModel`], knows nothing of SQLite.
//!
//! Freshness: a user whose events all predate the refit is served their stored vector.
//! A user with events newer than the refit (or with events but no vector yet) is
//! *folded in*: their vector is solved exactly from the current item factors and all
//! of their events, with the same objective and options as the refit (implicit's
//! `recalculate_user`), and cached until their events change. The objective's
//! missing-data weights `w_i = pop_i^ω / mean(pop^ω)` are recomputed at load from the
//! stored popularity and the refit's `popularity_exponent`, so the fold-in Gramian is
//! `YᵀWY` (`YᵀY` when ω = 0).

use std::collections::HashMap;
use std::sync::Mutex;

use super::cache::DbState;
use super::options::{Options, RegularizationScaling};
use crate::model::factors::mix64;
use crate::model::feedback::{self, FeedbackParams};
use crate::model::scan::{self, HalfFactors, Int8Factors};
use crate::model::topk::{self, Eligible, FirstPass};
use crate::model::{als, explain, Factors};
use crate::store::{Event, StoredModel};

/// The database state a call saw (equal stamps mean nothing in the database changed
/// in between); None inside a transaction, where no state can be trusted.
pub type Stamp = Option<DbState>;

/// A folded-in user vector and the events it was computed from.
#[derive(Debug)]
struct Folded {
    /// Fingerprint of the user's events at fold-in time (see [`fingerprint`]).
    events: u64,
    /// The database state the events were last read at.
    stamp: Stamp,
    vector: Vec<f32>,
}

#[derive(Debug)]
pub struct Serving {
    /// Cache key: the tag of the refit that wrote this model.
    pub tag: String,
    pub version: i64,
    user_index: HashMap<i64, u32>,
    users: Factors,
    /// The user id of each stored vector (`similar_users` names its rows with them).
    user_ids: Vec<i64>,
    /// L2 norm of each stored user vector, for `similar_users` (computed once per
    /// decoded model, not per call).
    user_norms: Vec<f32>,
    item_ids: Vec<i64>,
    /// Whether `item_ids` is strictly increasing (as a refit writes it): then sorted id
    /// lists map to indices by a merge, without hashing every id.
    item_ids_sorted: bool,
    item_index: HashMap<i64, u32>,
    items: Factors,
    /// The item factors in the layout the catalogue scans read.
    scan: Scan,
    item_norms: Vec<f32>,
    popularity: Vec<f32>,
    /// Missing-data weight `w_i` of each item (all 1.0 unless `popularity_exponent > 0`),
    /// recomputed from the stored popularity exactly as the refit computed it.
    item_weights: Vec<f32>,
    /// `YᵀWY` of the item factors (`YᵀY` when every weight is 1), for fold-in.
    item_gramian: Vec<f32>,
    feedback: FeedbackParams,
    regularization: f32,
    regularization_scaling: RegularizationScaling,
    events_upto: i64,
    /// Per stored user: the digest of the events the refit learned from (empty for a
    /// model stored before digests).
    user_digests: Vec<u64>,
    newest_ts: i64,
    folded: Mutex<HashMap<i64, Folded>>,
    /// Item ids of the least-viewed tenth of the catalogue: exploration candidates.
    under_exposed: Vec<i64>,
}

/// How the catalogue scans read the item factors (the ranking is the f32 one in every
/// case: see [`topk::top_k_dot_bounded`]).
#[derive(Debug)]
enum Scan {
    /// The f32 rows: small matrices without VNNI (they stay in the caches, the scan is
    /// bound by arithmetic).
    Rows,
    /// With AVX-512 VNNI: an 8-bit first pass, then exact f32 rescoring of the
    /// candidates.
    Int8(Int8Factors),
    /// Without VNNI, above [`HALF_FROM_BYTES`] (bound by memory): a half-precision first
    /// pass, then exact f32 rescoring.
    Half(HalfFactors),
}

/// Size of the f32 item matrix from which scans without VNNI read half-precision
/// copies first (measured on a 2-core EPYC: at 27k items × 64 factors, 6.9 MB, the f32
/// scan is faster; at 100k, 26 MB, the half-precision one is 1.5x faster).
const HALF_FROM_BYTES: usize = 16 << 20;

impl Scan {
    fn for_items(items: &Factors) -> Self {
        if scan::vnni() {
            if let Some(int8) = Int8Factors::from_f32(items) {
                return Scan::Int8(int8);
            }
        }
        if items.data.len() * 4 <= HALF_FROM_BYTES {
            return Scan::Rows;
        }
        HalfFactors::from_f32(items).map_or(Scan::Rows, Scan::Half)
    }
}

/// What a ranking leaves out, by item id: the items of `exclude`, and every item outside
/// `allow` when it is given (both sorted).
#[derive(Clone, Copy, Debug, Default)]
pub struct ItemFilter<'a> {
    pub exclude: &'a [i64],
    pub allow: Option<&'a [i64]>,
}

impl ItemFilter<'_> {
    pub fn admits(&self, id: i64) -> bool {
        self.exclude.binary_search(&id).is_err()
            && self.allow.is_none_or(|a| a.binary_search(&id).is_ok())
    }
}

/// Where a user's ranking vector came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSource {
    Stored,
    FoldedIn,
    /// No usable events and no stored vector: popularity.
    Popularity,
}

impl Serving {
    // Indices below u32::MAX: users and items are u32 indices (the model's index space).
    // f64 -> f32 on purpose: computed in f64, rounded once to the stored f32 precision.
    #[allow(clippy::cast_possible_truncation)]
    pub fn new(model: StoredModel) -> Self {
        let index = |ids: &[i64]| {
            ids.iter()
                .enumerate()
                .map(|(i, &id)| (id, i as u32))
                .collect()
        };
        // The options of the refit that wrote the model; a model written by a refit
        // with unreadable options falls back to the defaults (fold-in is then approximate).
        let options = Options::stored_base()
            .with_refit_json(&model.meta.options)
            .unwrap_or_default();
        // The refit's missing-data weights: w_i = pop_i^ω / mean(pop^ω) from the
        // popularity it stored (distinct users per item) and its popularity_exponent.
        let item_weights = if model.popularity.len() == model.items.rows {
            feedback::missing_weights(&model.popularity, options.popularity_exponent)
        } else {
            vec![1.0; model.items.rows]
        };
        let item_gramian = super::workers::with_pool(1, |pool| {
            als::weighted_gramian(&model.items, &item_weights, pool)
        })
        .unwrap_or_else(|_| vec![0.0; model.items.dim * model.items.dim]);
        let mut by_views: Vec<(f32, i64)> = model
            .popularity
            .iter()
            .zip(&model.item_ids)
            .map(|(&p, &id)| (p, id))
            .collect();
        by_views.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let under_exposed = by_views
            .iter()
            .take(model.item_ids.len().div_ceil(10))
            .map(|&(_, id)| id)
            .collect();
        Serving {
            under_exposed,
            tag: model.meta.tag,
            version: model.meta.version,
            user_index: index(&model.user_ids),
            user_norms: topk::norms(&model.users),
            users: model.users,
            user_ids: model.user_ids,
            item_index: index(&model.item_ids),
            item_norms: topk::norms(&model.items),
            scan: Scan::for_items(&model.items),
            item_ids_sorted: model.item_ids.windows(2).all(|w| w[0] < w[1]),
            item_ids: model.item_ids,
            items: model.items,
            popularity: model.popularity,
            item_weights,
            item_gramian,
            feedback: options.feedback(),
            regularization: options.regularization as f32,
            regularization_scaling: options.regularization_scaling,
            events_upto: model.meta.events_upto,
            user_digests: model.user_digests,
            newest_ts: model.meta.newest_ts,
            folded: Mutex::new(HashMap::new()),
        }
    }

    /// The sorted indices of the items of `ids` (sorted) that the model has factors for.
    // Indices below u32::MAX: users and items are u32 indices (the model's index space).
    #[allow(clippy::cast_possible_truncation)]
    fn item_indices(&self, ids: &[i64]) -> Vec<u32> {
        debug_assert!(ids.windows(2).all(|w| w[0] <= w[1]), "ids must be sorted");
        if !self.item_ids_sorted {
            let mut indices: Vec<u32> = ids
                .iter()
                .filter_map(|id| self.item_index.get(id).copied())
                .collect();
            indices.sort_unstable();
            indices.dedup();
            return indices;
        }
        // Both sorted: each id is looked for after the previous one's position, by a
        // step for a long list (a merge: O(n + m)) or a binary search for a short one
        // (O(m log n): a user's watched items must not cost a walk of the catalogue).
        let known = &self.item_ids;
        let merge = ids.len().saturating_mul(16) >= known.len();
        let mut indices = Vec::with_capacity(ids.len().min(known.len()));
        let mut at = 0;
        for &id in ids {
            if merge {
                while at < known.len() && known[at] < id {
                    at += 1;
                }
            } else {
                at += known[at..].partition_point(|&k| k < id);
            }
            if at == known.len() {
                break;
            }
            if known[at] == id {
                indices.push(at as u32);
                at += 1;
            }
        }
        indices
    }

    fn with_ids(&self, ranked: Vec<(u32, f32)>) -> Vec<(i64, f32)> {
        ranked
            .into_iter()
            .map(|(i, score)| (self.item_ids[i as usize], score))
            .collect()
    }

    /// The vector to rank with for a user whose events (rowid, event) are given.
    pub fn user_vector(
        &self,
        user_id: i64,
        events: &[(i64, Event)],
        stamp: Stamp,
    ) -> (UserSource, Option<Vec<f32>>) {
        let stored = self
            .user_index
            .get(&user_id)
            .map(|&u| self.users.row(u as usize));
        // A user who only ever swiped has no taste to rank by, whatever vector the refit
        // left them: popularity, like a user with no events.
        if !events.is_empty()
            && events
                .iter()
                .all(|(_, e)| self.feedback.is_skip(e.watch_time, e.duration))
        {
            return (UserSource::Popularity, None);
        }
        if let Some(row) =
            self.current_vector(user_id, events.iter().map(|(id, e)| (*id, e.item_id)))
        {
            return (UserSource::Stored, Some(row.to_vec()));
        }
        if events.is_empty() {
            return match stored {
                Some(row) => (UserSource::Stored, Some(row.to_vec())),
                None => (UserSource::Popularity, None),
            };
        }
        let key = fingerprint(events);
        let mut folded = self
            .folded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(f) = folded.get_mut(&user_id) {
            if f.events == key {
                f.stamp = stamp;
                return (UserSource::FoldedIn, Some(f.vector.clone()));
            }
        }
        match self.fold_in(events) {
            Some(vector) => {
                folded.insert(
                    user_id,
                    Folded {
                        events: key,
                        stamp,
                        vector: vector.clone(),
                    },
                );
                (UserSource::FoldedIn, Some(vector))
            }
            None => match stored {
                Some(row) => (UserSource::Stored, Some(row.to_vec())),
                None => (UserSource::Popularity, None),
            },
        }
    }

    /// Solves a user's vector from fixed item factors and all of their events.
    fn fold_in(&self, events: &[(i64, Event)]) -> Option<Vec<f32>> {
        let entries = self.entries(events);
        // Nothing watched (only skips, or only items without factors): no taste to
        // solve for; the caller falls back to the stored vector or popularity.
        if !entries.iter().any(|&(_, _, p)| p > 0.0) {
            return None;
        }
        let vector = als::fold_in(
            &self.items,
            &self.item_gramian,
            &self.item_weights,
            &entries,
            self.regularization,
            self.regularization_scaling,
        );
        vector.iter().all(|v| v.is_finite()).then_some(vector)
    }

    /// A user's events as fold-in entries (item index, confidence, preference): one
    /// per distinct item that has factors, with the refit's feedback options.
    fn entries(&self, events: &[(i64, Event)]) -> Vec<(u32, f32, f32)> {
        let n = events.len();
        let columns = (
            vec![0i64; n],
            events.iter().map(|(_, e)| e.item_id).collect::<Vec<_>>(),
            events.iter().map(|(_, e)| e.watch_time).collect::<Vec<_>>(),
            events.iter().map(|(_, e)| e.duration).collect::<Vec<_>>(),
            events.iter().map(|(_, e)| e.ts).collect::<Vec<_>>(),
        );
        let view = feedback::Events {
            user_ids: &columns.0,
            item_ids: &columns.1,
            watch_time: &columns.2,
            duration: &columns.3,
            ts: &columns.4,
        };
        let newest = self.newest_ts.max(feedback::newest_ts(&view));
        let fb = feedback::build(&view, &self.feedback, newest);
        // No events, no row 0 (fold-in's caller never gets here without events).
        if fb.data.n_users == 0 {
            return Vec::new();
        }
        let (dense, conf, pref) = fb.data.user_row(0);
        dense
            .iter()
            .zip(conf.iter().zip(pref))
            .filter_map(|(&d, (&c, &p))| {
                self.item_index
                    .get(&fb.item_ids[d as usize])
                    .map(|&i| (i, c, p))
            })
            .collect()
    }

    /// The stored vector of `user_id` when it is current: the user has one and their
    /// events, (event id, item id) each, are the ones the refit learned from. Then
    /// [`Serving::user_vector`] would return exactly this vector, so a caller can skip
    /// reading the user's events. (The refit stores no vector for a user who only
    /// skipped, so that case never reaches here.)
    ///
    /// With the refit's per-user digests that is exact, whatever the rowids (an event
    /// inserted with a rowid below the refit's, a deleted one, one moved to another
    /// item); a model stored before digests falls back to "no event newer than the
    /// refit's last rowid".
    pub fn current_vector(
        &self,
        user_id: i64,
        events: impl IntoIterator<Item = (i64, i64)>,
    ) -> Option<&[f32]> {
        let &u = self.user_index.get(&user_id)?;
        let current = match self.user_digests.get(u as usize) {
            Some(&stored) => feedback::events_digest(events) == stored,
            None => events.into_iter().all(|(id, _)| id <= self.events_upto),
        };
        current.then(|| self.users.row(u as usize))
    }

    /// The folded-in vector of `user_id` if it was computed or confirmed at this same
    /// database state (`stamp` not None): nothing can have changed the user's events
    /// since, so the caller need not read them.
    pub fn folded_at(&self, user_id: i64, stamp: Stamp) -> Option<Vec<f32>> {
        stamp?;
        let folded = self
            .folded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        folded
            .get(&user_id)
            .filter(|f| f.stamp == stamp)
            .map(|f| f.vector.clone())
    }

    /// The quantised copy the catalogue scans read first, if any.
    fn first_pass(&self) -> Option<FirstPass<'_>> {
        match &self.scan {
            Scan::Int8(int8) => Some(FirstPass::Int8(int8)),
            Scan::Half(half) => Some(FirstPass::Half(half, &self.item_norms)),
            Scan::Rows => None,
        }
    }

    /// Top-k items by dot product with `vector`, or by popularity as of the refit
    /// without one, among the items `filter` lets through.
    // Indices below u32::MAX: users and items are u32 indices (the model's index space).
    #[allow(clippy::cast_possible_truncation)]
    pub fn rank(&self, vector: Option<&[f32]>, k: usize, filter: &ItemFilter) -> Vec<(i64, f32)> {
        let exclude = self.item_indices(filter.exclude);
        let allow = filter.allow.map(|ids| self.item_indices(ids));
        let eligible = Eligible::new(&exclude, allow.as_deref());
        let ranked = match vector {
            Some(v) => match self.first_pass() {
                Some(first) => topk::top_k_dot_bounded(v, &self.items, &first, k, &eligible),
                None => topk::top_k_dot_among(v, &self.items, k, &eligible),
            },
            None => topk::top_k_scores(
                self.popularity
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| (i as u32, p)),
                k,
                &eligible,
            ),
        };
        self.with_ids(ranked)
    }

    /// The events that the model has not learned from yet end after this rowid.
    pub fn events_upto(&self) -> i64 {
        self.events_upto
    }

    /// Whether the model has factors for `item_id`.
    pub fn knows_item(&self, item_id: i64) -> bool {
        self.item_index.contains_key(&item_id)
    }

    /// Replaces the last `slots` of `ranked` (a top-k list) by exploration picks: items
    /// without factors yet (`fresh`) or among the least viewed, that `filter` lets
    /// through and not already ranked, ordered by a hash of (seed, user, model version, item) so that a user's
    /// picks are reproducible and differ between users and refits. Explored rows get a
    /// NaN score (NULL in SQL).
    pub fn explore(
        &self,
        ranked: &mut Vec<(i64, f32)>,
        slots: usize,
        fresh: &[i64],
        filter: &ItemFilter,
        user_id: i64,
        seed: u64,
    ) {
        if slots == 0 {
            return;
        }
        let keep = ranked.len().saturating_sub(slots);
        let kept: std::collections::HashSet<i64> = ranked.iter().map(|&(id, _)| id).collect();
        let salt =
            mix64(seed ^ mix64(user_id.cast_unsigned() ^ mix64(self.version.cast_unsigned())));
        let mut candidates: Vec<(u64, i64)> = fresh
            .iter()
            .chain(&self.under_exposed)
            .filter(|id| !kept.contains(id) && filter.admits(**id))
            .map(|&id| (mix64(salt ^ id.cast_unsigned()), id))
            .collect();
        candidates.sort_unstable();
        candidates.dedup_by_key(|c| c.1);
        let picks: Vec<(i64, f32)> = candidates
            .iter()
            .take(slots)
            .map(|&(_, id)| (id, f32::NAN))
            .collect();
        if picks.is_empty() {
            return;
        }
        let backfill = slots - picks.len(); // too few candidates: keep more of the ranking
        ranked.truncate(keep + backfill);
        ranked.extend(picks);
    }

    /// The k items closest to `item_id` by cosine of their factors (itself left out),
    /// among those `filter` lets through; empty when the item has no factors.
    pub fn similar_items(&self, item_id: i64, k: usize, filter: &ItemFilter) -> Vec<(i64, f32)> {
        let Some(&of) = self.item_index.get(&item_id) else {
            return Vec::new();
        };
        let mut exclude = self.item_indices(filter.exclude);
        if let Err(at) = exclude.binary_search(&of) {
            exclude.insert(at, of);
        }
        let allow = filter.allow.map(|ids| self.item_indices(ids));
        let eligible = Eligible::new(&exclude, allow.as_deref());
        let (items, norms, of) = (&self.items, &self.item_norms, of as usize);
        // With VNNI the 8-bit pass; otherwise the f32 scan (a half-precision pass cannot
        // bound the cosine of items whose factors are tiny, f16 subnormals, so they would
        // all be rescored).
        self.with_ids(match &self.scan {
            Scan::Int8(int8) => {
                topk::top_k_cosine_bounded_among(items, norms, int8, of, k, &eligible)
            }
            _ => topk::top_k_cosine_among(items, norms, of, k, &eligible),
        })
    }
}

impl Serving {
    /// The k stored users closest to `vector` (the ranking vector of `user_id`, see
    /// [`Serving::user_vector`]) by cosine, `user_id`'s own stored vector left out. Ties:
    /// lower stored index first. The f32 scan over the user factors: no quantised copy
    /// of them is kept (users are scanned far less often than items).
    pub fn similar_users(
        &self,
        user_id: i64,
        vector: &[f32],
        k: usize,
        allow: Option<&[i64]>,
    ) -> Vec<(i64, f32)> {
        let exclude: Vec<u32> = self.user_index.get(&user_id).copied().into_iter().collect();
        let allow: Option<Vec<u32>> = allow.map(|ids| {
            let mut indices: Vec<u32> = ids
                .iter()
                .filter_map(|id| self.user_index.get(id).copied())
                .collect();
            indices.sort_unstable();
            indices
        });
        topk::top_k_cosine_to_among(
            vector,
            topk::norm(vector),
            &self.users,
            &self.user_norms,
            k,
            &Eligible::new(&exclude, allow.as_deref()),
        )
        .into_iter()
        .filter_map(|(u, score)| self.user_ids.get(u as usize).map(|&id| (id, score)))
        .collect()
    }

    /// The k watched items that contribute most to the score of `item_id` for the user
    /// whose events are given, largest first (ties: lower item index first), each with
    /// its contribution (see [`explain::contributions`]): over all watched items they add
    /// up to the score of the user's folded-in vector. Skips (preference 0) contribute
    /// nothing and are left out. Empty when the item has no factors, when nothing the
    /// user watched has factors, or when the system cannot be solved.
    // f64 -> f32 on purpose: computed in f64, rounded once as every score is.
    #[allow(clippy::cast_possible_truncation)]
    pub fn why_recommended(
        &self,
        events: &[(i64, Event)],
        item_id: i64,
        k: usize,
    ) -> Vec<(i64, f32)> {
        let Some(&item) = self.item_index.get(&item_id) else {
            return Vec::new();
        };
        let entries = self.entries(events);
        if !entries.iter().any(|&(_, _, p)| p > 0.0) {
            return Vec::new();
        }
        let Some(contributions) = explain::contributions(
            &self.items,
            &self.item_gramian,
            &self.item_weights,
            &entries,
            self.regularization,
            self.regularization_scaling,
            item,
        ) else {
            return Vec::new();
        };
        let watched = entries
            .iter()
            .zip(&contributions)
            .filter(|((_, _, p), _)| *p > 0.0)
            .map(|(&(j, _, _), &c)| (j, c as f32));
        self.with_ids(topk::top_k_scores(watched, k, &Eligible::default()))
    }
}

/// A hash of every field of every event: any INSERT, UPDATE or DELETE of the user's
/// events changes it, so a folded-in vector is recomputed exactly when needed.
fn fingerprint(events: &[(i64, Event)]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for (id, e) in events {
        (
            id,
            e.item_id,
            e.watch_time.to_bits(),
            e.duration.to_bits(),
            e.ts,
        )
            .hash(&mut hasher);
    }
    hasher.finish()
}
