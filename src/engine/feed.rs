//! What the serving functions answer, on a resolved model: a user's feed, an item's
//! neighbours, and the ranking quality of a hold-out set.

use std::collections::{BTreeMap, HashSet};

use rusqlite::Connection;

use super::cache::Resolved;
use super::serving::{ItemFilter, Serving};
use crate::error::Result;
use crate::model::metrics::{Accumulator, Metrics};
use crate::store;

/// The top-k items of one user: what `recommend(user_id, k, model)` returns.
///
/// A user with factors is scored by dot product with every item; a user without
/// factors (unknown, or newer than the last refit) gets the most popular items. Items
/// the user already watched are left out unless the model has `exclude_watched = false`,
/// and so are the user's rows of the `exclude_items` block-list. With `allow` (sorted
/// item ids: the call's `item_id IN (...)`), only those items are ranked: the k best of
/// them, not the allowed part of the top k.
///
/// An up-to-date user (stored vector, no event newer than the refit) costs one read of
/// the events index, and so does a folded-in user while the database is unchanged;
/// only a user to fold in (again) has their whole events read.
pub fn recommend(
    conn: &Connection,
    resolved: &Resolved,
    user_id: i64,
    k: usize,
    allow: Option<&[i64]>,
) -> Result<Vec<(i64, f32)>> {
    let Resolved {
        shadow,
        options,
        model,
        ..
    } = resolved;
    let seen = shadow.user_items(conn, user_id)?;
    let mut exclude: Vec<i64> = Vec::new();
    if options.exclude_watched {
        exclude = seen.iter().map(|&(_, item)| item).collect();
        exclude.dedup(); // events come in item order
    }
    if !options.exclude_items.is_empty() {
        let blocked = store::excluded_items(
            conn,
            "recommend",
            &shadow.schema,
            &options.exclude_items,
            Some(user_id),
        )?;
        exclude = merge_sorted(&exclude, &blocked);
    }
    let filter = ItemFilter {
        exclude: &exclude,
        allow,
    };
    let Some(model) = model else {
        return Ok(popular_items(&resolved.live_popularity(conn)?, k, &filter));
    };
    let vector = ranking_vector(conn, resolved, model, user_id, &seen)?;
    let mut ranked = model.rank(vector.as_deref(), k, &filter);
    let slots = explore_slots(k, options.explore);
    if slots > 0 {
        let mut fresh = shadow.items_after(conn, model.events_upto())?;
        fresh.retain(|&id| !model.knows_item(id));
        model.explore(&mut ranked, slots, &fresh, &filter, user_id, options.seed);
    }
    Ok(ranked)
}

/// The union of two sorted id lists, sorted and without repeats.
fn merge_sorted(a: &[i64], b: &[i64]) -> Vec<i64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    out.extend_from_slice(a);
    out.extend_from_slice(b);
    out.sort_unstable();
    out.dedup();
    out
}

/// `round(k · explore)`, the slots given to exploration (`explore` is in [0, 1]).
// slots is a whole number in [1, k] (see below), so the conversion is exact.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn explore_slots(k: usize, explore: f64) -> usize {
    let slots = (k as f64 * explore).round();
    if slots > 0.0 {
        // At most k: explore <= 1 and k <= 10,000, so the conversion is exact.
        (slots as usize).min(k)
    } else {
        0
    }
}

/// The k items nearest to `item_id`: what `similar_items(item_id, k, model)` returns,
/// among `allow` when given (sorted ids), without the rows of the `exclude_items`
/// block-list that apply to everyone. Empty before the first refit and for an item
/// without factors.
pub fn similar_items(
    conn: &Connection,
    resolved: &Resolved,
    item_id: i64,
    k: usize,
    allow: Option<&[i64]>,
) -> Result<Vec<(i64, f32)>> {
    let Some(model) = &resolved.model else {
        return Ok(Vec::new());
    };
    let mut exclude = Vec::new();
    if !resolved.options.exclude_items.is_empty() {
        exclude = store::excluded_items(
            conn,
            "similar_items",
            &resolved.shadow.schema,
            &resolved.options.exclude_items,
            None,
        )?;
    }
    let filter = ItemFilter {
        exclude: &exclude,
        allow,
    };
    Ok(model.similar_items(item_id, k, &filter))
}

/// Ranking quality on `relevant` (user, item) pairs: every user who has one gets what
/// [`recommend`] returns, and the metrics at `k` are averaged over those users.
pub fn evaluate(
    conn: &Connection,
    resolved: &Resolved,
    relevant: &[(i64, i64)],
    k: usize,
) -> Result<Metrics> {
    let mut by_user: BTreeMap<i64, HashSet<i64>> = BTreeMap::new();
    for &(user, item) in relevant {
        by_user.entry(user).or_default().insert(item);
    }
    let mut acc = Accumulator::default();
    for (user, items) in &by_user {
        let ranked: Vec<i64> = recommend(conn, resolved, *user, k, None)?
            .into_iter()
            .map(|(item, _)| item)
            .collect();
        acc.add(&ranked, items, k);
    }
    Ok(acc.finish(resolved.shadow.catalogue_size(conn)?))
}

/// The first k of `ranked` (item id, popularity) pairs, best first, that `filter` lets
/// through: the ranking served before the first refit.
fn popular_items(ranked: &[(i64, f32)], k: usize, filter: &ItemFilter) -> Vec<(i64, f32)> {
    ranked
        .iter()
        .filter(|(id, _)| filter.admits(*id))
        .take(k)
        .copied()
        .collect()
}

/// The vector `recommend(user_id, ...)` ranks with, from the user's (rowid, item) events
/// `seen`: the stored one when it is current, else the folded-in one (cached, or solved
/// from the user's events); None when the user has neither (popularity). Every function
/// over a user's taste ranks with it.
fn ranking_vector(
    conn: &Connection,
    resolved: &Resolved,
    model: &Serving,
    user_id: i64,
    seen: &[(i64, i64)],
) -> Result<Option<Vec<f32>>> {
    if let Some(vector) = model.current_vector(user_id, seen.iter().copied()) {
        return Ok(Some(vector.to_vec()));
    }
    if let Some(vector) = model.folded_at(user_id, resolved.at) {
        return Ok(Some(vector));
    }
    let events = resolved.shadow.user_events(conn, user_id)?;
    Ok(model.user_vector(user_id, &events, resolved.at).1)
}

/// The k users nearest to `user_id`: what `similar_users(user_id, k, model)` returns,
/// among `allow` (sorted user ids: the call's `user_id IN (...)`) when given.
/// The query is the user's ranking vector (fresh events folded in); the candidates are
/// the stored vectors, as of the last refit. Empty before the first refit and for a
/// user with no vector and no usable events.
pub fn similar_users(
    conn: &Connection,
    resolved: &Resolved,
    user_id: i64,
    k: usize,
    allow: Option<&[i64]>,
) -> Result<Vec<(i64, f32)>> {
    let Some(model) = &resolved.model else {
        return Ok(Vec::new());
    };
    let seen = resolved.shadow.user_items(conn, user_id)?;
    Ok(
        match ranking_vector(conn, resolved, model, user_id, &seen)? {
            Some(vector) => model.similar_users(user_id, &vector, k, allow),
            None => Vec::new(),
        },
    )
}

/// The k watched items that contribute most to the score of `item_id` for `user_id`:
/// what `why_recommended(user_id, item_id, k, model)` returns (see
/// [`Serving::why_recommended`]). Always the fold-in of all of the user's current
/// events, whether or not their stored vector is current. Empty before the first
/// refit, for an item without factors and for a user with nothing watched.
pub fn why_recommended(
    conn: &Connection,
    resolved: &Resolved,
    user_id: i64,
    item_id: i64,
    k: usize,
) -> Result<Vec<(i64, f32)>> {
    let Some(model) = &resolved.model else {
        return Ok(Vec::new());
    };
    if !model.knows_item(item_id) {
        return Ok(Vec::new());
    }
    let events = resolved.shadow.user_events(conn, user_id)?;
    Ok(model.why_recommended(&events, item_id, k))
}
