//! Aggregated feedback as two CSR matrices (rows = users, and rows = items).

use std::collections::TryReserveError;

use super::memory::filled;

/// Aggregated feedback as two CSR matrices (by user and by item), each entry a
/// confidence `c >= 0` and a preference `p` in `{0.0, 1.0}`.
///
/// Row `u` of the user matrix is `user_items[user_ptr[u]..user_ptr[u + 1]]` (with the
/// matching `user_conf` / `user_pref`), sorted by item index; symmetrically for items.
///
/// `missing_weight[i]` is the weight `w_i` of every *unobserved* pair on item `i` (see
/// [`super::als`]): all 1.0 from the constructors (uniform, Hu et al.), set by
/// [`super::feedback::build`] from item popularity.
#[derive(Clone, Debug, PartialEq)]
pub struct Interactions {
    pub n_users: usize,
    pub n_items: usize,
    pub user_ptr: Vec<usize>,
    pub user_items: Vec<u32>,
    pub user_conf: Vec<f32>,
    pub user_pref: Vec<f32>,
    pub item_ptr: Vec<usize>,
    pub item_users: Vec<u32>,
    pub item_conf: Vec<f32>,
    pub item_pref: Vec<f32>,
    /// Per item: weight of its unobserved pairs (finite, >= 0; 1.0 = uniform).
    pub missing_weight: Vec<f32>,
}

/// A borrowed CSR matrix: either side of an [`Interactions`].
#[derive(Clone, Copy, Debug)]
pub struct CsrView<'a> {
    pub ptr: &'a [usize],
    pub cols: &'a [u32],
    pub conf: &'a [f32],
    pub pref: &'a [f32],
}

impl<'a> CsrView<'a> {
    pub fn n_rows(&self) -> usize {
        self.ptr.len().saturating_sub(1)
    }

    /// (column indices, confidences, preferences) of row `r`.
    #[inline]
    pub fn row(&self, r: usize) -> (&'a [u32], &'a [f32], &'a [f32]) {
        let (a, b) = (self.ptr[r], self.ptr[r + 1]);
        (&self.cols[a..b], &self.conf[a..b], &self.pref[a..b])
    }
}

/// One aggregated (user, item) observation.
#[cfg(test)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Entry {
    pub user: u32,
    pub item: u32,
    pub confidence: f32,
    pub preference: f32,
}

/// One CSR matrix: (ptr, column indices, confidences, preferences).
#[cfg(test)]
type Csr = (Vec<usize>, Vec<u32>, Vec<f32>, Vec<f32>);

/// Counting sort by row, then sort each row by column: deterministic for any input
/// order when (row, column) pairs are unique.
// Indices below u32::MAX: users and items are u32 indices (the model's index space).
#[allow(clippy::cast_possible_truncation)]
#[cfg(test)]
fn build_csr(
    n_rows: usize,
    entries: &[Entry],
    row_of: impl Fn(&Entry) -> u32,
    col_of: impl Fn(&Entry) -> u32,
) -> Csr {
    let nnz = entries.len();
    let mut ptr = vec![0usize; n_rows + 1];
    for e in entries {
        ptr[row_of(e) as usize + 1] += 1;
    }
    for r in 0..n_rows {
        ptr[r + 1] += ptr[r];
    }
    let mut next = ptr.clone();
    let mut order = vec![0u32; nnz];
    for (k, e) in entries.iter().enumerate() {
        let r = row_of(e) as usize;
        order[next[r]] = k as u32;
        next[r] += 1;
    }
    for r in 0..n_rows {
        // Stable sort: if a caller passes duplicates anyway, input order decides.
        order[ptr[r]..ptr[r + 1]].sort_by_key(|&k| col_of(&entries[k as usize]));
    }
    let cols = order
        .iter()
        .map(|&k| col_of(&entries[k as usize]))
        .collect();
    let conf = order
        .iter()
        .map(|&k| entries[k as usize].confidence)
        .collect();
    let pref = order
        .iter()
        .map(|&k| entries[k as usize].preference)
        .collect();
    (ptr, cols, conf, pref)
}

/// Why [`Interactions::try_from_entries`] refused its input.
#[derive(Clone, Debug, PartialEq)]
#[cfg(test)]
pub enum InteractionsError {
    /// Entry `index` names a user or item outside `0..n_users` / `0..n_items`.
    OutOfRange { index: usize, user: u32, item: u32 },
    /// More entries than a `u32` can index.
    TooMany,
}

#[cfg(test)]
impl std::fmt::Display for InteractionsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InteractionsError::OutOfRange { index, user, item } => {
                write!(
                    f,
                    "interaction {index} (user {user}, item {item}) is out of range"
                )
            }
            InteractionsError::TooMany => write!(f, "too many interactions (more than 2^32 - 1)"),
        }
    }
}

#[cfg(test)]
impl std::error::Error for InteractionsError {}

impl Interactions {
    #[cfg(test)]
    /// Entries in any order; the caller guarantees no duplicate (user, item). Within each
    /// CSR row, entries are sorted by column index (deterministic).
    ///
    /// # Panics
    /// If an entry's user or item is out of range (see [`Self::try_from_entries`]).
    pub fn from_entries(n_users: usize, n_items: usize, entries: &[Entry]) -> Self {
        match Self::try_from_entries(n_users, n_items, entries) {
            Ok(x) => x,
            Err(e) => panic!("Interactions::from_entries: {e}"),
        }
    }

    #[cfg(test)]
    /// Like [`Self::from_entries`], but returns an error instead of panicking.
    pub fn try_from_entries(
        n_users: usize,
        n_items: usize,
        entries: &[Entry],
    ) -> Result<Self, InteractionsError> {
        if entries.len() >= u32::MAX as usize {
            return Err(InteractionsError::TooMany);
        }
        if let Some((index, e)) = entries
            .iter()
            .enumerate()
            .find(|(_, e)| e.user as usize >= n_users || e.item as usize >= n_items)
        {
            return Err(InteractionsError::OutOfRange {
                index,
                user: e.user,
                item: e.item,
            });
        }
        let (user_ptr, user_items, user_conf, user_pref) =
            build_csr(n_users, entries, |e| e.user, |e| e.item);
        let (item_ptr, item_users, item_conf, item_pref) =
            build_csr(n_items, entries, |e| e.item, |e| e.user);
        Ok(Interactions {
            n_users,
            n_items,
            user_ptr,
            user_items,
            user_conf,
            user_pref,
            item_ptr,
            item_users,
            item_conf,
            item_pref,
            missing_weight: vec![1.0; n_items],
        })
    }

    /// From the user-by-item CSR matrix alone: rows sorted by item index, each item at
    /// most once per row (as [`super::feedback::EventSink`] builds them). The item side is
    /// its transpose (rows come out sorted by user); the result equals
    /// [`Self::from_entries`] of the same entries. `missing_weight` is all 1.0.
    ///
    /// # Panics
    /// If the arrays are inconsistent (`user_ptr` not of length `n_users + 1` or not
    /// ending at the number of entries, an item out of range).
    // Indices below u32::MAX: users and items are u32 indices (the model's index space).
    #[allow(clippy::cast_possible_truncation)]
    pub fn from_user_rows(
        n_users: usize,
        n_items: usize,
        user_ptr: Vec<usize>,
        user_items: Vec<u32>,
        user_conf: Vec<f32>,
        user_pref: Vec<f32>,
    ) -> Self {
        let built =
            Self::try_from_user_rows(n_users, n_items, user_ptr, user_items, user_conf, user_pref);
        match built {
            Ok(x) => x,
            Err(e) => panic!("Interactions::from_user_rows: {e}"),
        }
    }

    /// [`Self::from_user_rows`]; the allocator's refusal of the item side (12 bytes per
    /// pair) is an error.
    ///
    /// # Errors
    /// When the item side cannot be allocated.
    ///
    /// # Panics
    /// As [`Self::from_user_rows`], on inconsistent arrays.
    // Indices below u32::MAX: users and items are u32 indices (the model's index space).
    #[allow(clippy::cast_possible_truncation)]
    pub fn try_from_user_rows(
        n_users: usize,
        n_items: usize,
        user_ptr: Vec<usize>,
        user_items: Vec<u32>,
        user_conf: Vec<f32>,
        user_pref: Vec<f32>,
    ) -> Result<Self, TryReserveError> {
        let nnz = user_items.len();
        assert!(
            user_ptr.len() == n_users + 1
                && user_ptr[n_users] == nnz
                && user_conf.len() == nnz
                && user_pref.len() == nnz,
            "Interactions::from_user_rows: inconsistent CSR arrays"
        );
        let mut item_ptr = filled(n_items + 1, 0usize)?;
        for &i in &user_items {
            item_ptr[i as usize + 1] += 1;
        }
        for i in 0..n_items {
            item_ptr[i + 1] += item_ptr[i];
        }
        let mut next = item_ptr.clone();
        let mut item_users = filled(nnz, 0u32)?;
        let mut item_conf = filled(nnz, 0f32)?;
        let mut item_pref = filled(nnz, 0f32)?;
        for u in 0..n_users {
            for k in user_ptr[u]..user_ptr[u + 1] {
                let i = user_items[k] as usize;
                let at = next[i];
                item_users[at] = u as u32;
                item_conf[at] = user_conf[k];
                item_pref[at] = user_pref[k];
                next[i] += 1;
            }
        }
        Ok(Interactions {
            n_users,
            n_items,
            user_ptr,
            user_items,
            user_conf,
            user_pref,
            item_ptr,
            item_users,
            item_conf,
            item_pref,
            missing_weight: filled(n_items, 1.0)?,
        })
    }

    pub fn nnz(&self) -> usize {
        self.user_items.len()
    }

    /// (items, confidences, preferences) of user `u`.
    pub fn user_row(&self, u: usize) -> (&[u32], &[f32], &[f32]) {
        let (a, b) = (self.user_ptr[u], self.user_ptr[u + 1]);
        (
            &self.user_items[a..b],
            &self.user_conf[a..b],
            &self.user_pref[a..b],
        )
    }

    #[cfg(test)]
    /// (users, confidences, preferences) of item `i`.
    pub fn item_row(&self, i: usize) -> (&[u32], &[f32], &[f32]) {
        let (a, b) = (self.item_ptr[i], self.item_ptr[i + 1]);
        (
            &self.item_users[a..b],
            &self.item_conf[a..b],
            &self.item_pref[a..b],
        )
    }

    /// The user-by-item CSR matrix (rows = users, columns = items).
    pub fn by_user(&self) -> CsrView<'_> {
        CsrView {
            ptr: &self.user_ptr,
            cols: &self.user_items,
            conf: &self.user_conf,
            pref: &self.user_pref,
        }
    }

    /// The item-by-user CSR matrix (rows = items, columns = users).
    pub fn by_item(&self) -> CsrView<'_> {
        CsrView {
            ptr: &self.item_ptr,
            cols: &self.item_users,
            conf: &self.item_conf,
            pref: &self.item_pref,
        }
    }

    /// Whether every unobserved pair has weight exactly 1 (the uniform model).
    // Exactly 1.0 on purpose: the default weights are set to 1.0, not computed.
    #[allow(clippy::float_cmp)]
    pub fn uniform_missing_weight(&self) -> bool {
        self.missing_weight.iter().all(|&w| w == 1.0)
    }

    /// Number of observed pairs on item `i`.
    pub fn item_count(&self, i: usize) -> usize {
        self.item_ptr[i + 1] - self.item_ptr[i]
    }

    /// Sets the missing-data weights from the popularity of each item (its number of
    /// observed pairs, i.e. distinct users) as [`super::feedback::build`] does (tests).
    #[cfg(test)]
    pub fn with_popularity_weights(mut self, exponent: f64) -> Self {
        let popularity: Vec<f32> = (0..self.n_items)
            .map(|i| self.item_count(i) as f32)
            .collect();
        self.missing_weight = super::feedback::missing_weights(&popularity, exponent);
        self
    }

    /// Sum of all confidences (f64, fixed order).
    pub fn total_confidence(&self) -> f64 {
        self.user_conf.iter().map(|&c| f64::from(c)).sum()
    }
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

    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *state >> 33
    }

    fn sample(n_users: usize, n_items: usize, seed: u64) -> Vec<Entry> {
        let mut s = seed;
        let mut out = vec![];
        for u in 0..n_users {
            for i in 0..n_items {
                if lcg(&mut s).is_multiple_of(3) {
                    out.push(Entry {
                        user: u as u32,
                        item: i as u32,
                        confidence: 1.0 + (lcg(&mut s) % 10) as f32,
                        preference: (lcg(&mut s) % 2) as f32,
                    });
                }
            }
        }
        // Shuffle (Fisher-Yates) so that input order is not sorted.
        for k in (1..out.len()).rev() {
            let j = (lcg(&mut s) as usize) % (k + 1);
            out.swap(k, j);
        }
        out
    }

    #[test]
    fn csr_and_transpose_agree_and_rows_are_sorted() {
        let (nu, ni) = (17, 11);
        let entries = sample(nu, ni, 7);
        let x = Interactions::from_entries(nu, ni, &entries);
        assert_eq!(x.nnz(), entries.len());
        assert_eq!(x.item_users.len(), entries.len());
        assert_eq!(x.user_ptr.len(), nu + 1);
        assert_eq!(x.item_ptr.len(), ni + 1);
        // Every entry appears in both views with the same values.
        for e in &entries {
            let (items, conf, pref) = x.user_row(e.user as usize);
            let k = items.binary_search(&e.item).expect("in user row");
            assert_eq!((conf[k], pref[k]), (e.confidence, e.preference));
            let (users, conf, pref) = x.item_row(e.item as usize);
            let k = users.binary_search(&e.user).expect("in item row");
            assert_eq!((conf[k], pref[k]), (e.confidence, e.preference));
        }
        // Rows strictly increasing; the transposed dense matrices are equal.
        let mut dense_u = vec![None; nu * ni];
        let mut dense_i = vec![None; nu * ni];
        for u in 0..nu {
            let (items, conf, pref) = x.user_row(u);
            assert!(
                items.windows(2).all(|w| w[0] < w[1]),
                "user row {u} not sorted"
            );
            for k in 0..items.len() {
                dense_u[u * ni + items[k] as usize] = Some((conf[k], pref[k]));
            }
        }
        for i in 0..ni {
            let (users, conf, pref) = x.item_row(i);
            assert!(
                users.windows(2).all(|w| w[0] < w[1]),
                "item row {i} not sorted"
            );
            for k in 0..users.len() {
                dense_i[users[k] as usize * ni + i] = Some((conf[k], pref[k]));
            }
        }
        assert_eq!(dense_u, dense_i);
        // Input order does not matter.
        let mut rev = entries.clone();
        rev.reverse();
        assert_eq!(Interactions::from_entries(nu, ni, &rev), x);
    }

    #[test]
    fn empty_rows_and_out_of_range() {
        let e = [Entry {
            user: 2,
            item: 0,
            confidence: 1.0,
            preference: 1.0,
        }];
        let x = Interactions::from_entries(4, 3, &e);
        assert_eq!(x.user_row(0).0, &[] as &[u32]);
        assert_eq!(x.user_row(2).0, &[0]);
        assert_eq!(x.item_row(0).0, &[2]);
        assert_eq!(x.item_row(2).0, &[] as &[u32]);
        assert!(matches!(
            Interactions::try_from_entries(2, 3, &e),
            Err(InteractionsError::OutOfRange {
                index: 0,
                user: 2,
                item: 0
            })
        ));
    }
}
