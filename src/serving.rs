//! A fitted model decoded for serving: ids, factors, norms and popularity in memory,
//! so that `recommend()` and `similar_items()` never re-read factor blobs.
//! Pure Rust: built from a [`StoredModel`], knows nothing of SQLite.

use std::collections::HashMap;

use crate::model::topk;
use crate::model::Factors;
use crate::store::StoredModel;

#[derive(Debug)]
pub struct Serving {
    /// Cache key: the tag of the refit that wrote this model.
    pub tag: String,
    pub version: i64,
    user_index: HashMap<i64, u32>,
    users: Factors,
    item_ids: Vec<i64>,
    item_index: HashMap<i64, u32>,
    items: Factors,
    item_norms: Vec<f32>,
    popularity: Vec<f32>,
}

impl Serving {
    pub fn new(model: StoredModel) -> Self {
        let index = |ids: &[i64]| ids.iter().enumerate().map(|(i, &id)| (id, i as u32)).collect();
        Serving {
            tag: model.meta.tag,
            version: model.meta.version,
            user_index: index(&model.user_ids),
            users: model.users,
            item_index: index(&model.item_ids),
            item_norms: topk::norms(&model.items),
            item_ids: model.item_ids,
            items: model.items,
            popularity: model.popularity,
        }
    }

    fn item_indices(&self, ids: &[i64]) -> Vec<u32> {
        let mut indices: Vec<u32> = ids.iter().filter_map(|id| self.item_index.get(id).copied()).collect();
        indices.sort_unstable();
        indices
    }

    fn with_ids(&self, ranked: Vec<(u32, f32)>) -> Vec<(i64, f32)> {
        ranked.into_iter().map(|(i, score)| (self.item_ids[i as usize], score)).collect()
    }

    /// Top-k items for a user by dot product, or by popularity when the user has no
    /// factors; `exclude` holds item ids to leave out.
    pub fn recommend(&self, user_id: i64, k: usize, exclude: &[i64]) -> Vec<(i64, f32)> {
        let exclude = self.item_indices(exclude);
        let ranked = match self.user_index.get(&user_id) {
            Some(&u) => topk::top_k_dot(self.users.row(u as usize), &self.items, k, &exclude),
            None => topk::top_k_scores(self.popularity.iter().enumerate().map(|(i, &p)| (i as u32, p)), k, &exclude),
        };
        self.with_ids(ranked)
    }

    /// The k items closest to `item_id` by cosine of their factors (itself left out);
    /// empty when the item has no factors.
    pub fn similar_items(&self, item_id: i64, k: usize) -> Vec<(i64, f32)> {
        match self.item_index.get(&item_id) {
            Some(&i) => self.with_ids(topk::top_k_cosine(&self.items, &self.item_norms, i as usize, k)),
            None => Vec::new(),
        }
    }
}

/// The first k of `ranked` (item id, popularity) pairs, best first, that are not in
/// `exclude` (sorted ids): the ranking served before the first refit.
pub fn popular_items(ranked: &[(i64, f32)], k: usize, exclude: &[i64]) -> Vec<(i64, f32)> {
    ranked.iter().filter(|(id, _)| exclude.binary_search(id).is_err()).take(k).copied().collect()
}
