//! Choosing `alpha`, `regularization` and its scaling from the data (`tune`).
//!
//! The right strength of the prior differs a lot between logs: a dense, fully observed
//! log wants light regularisation (personal feeds), a swipe-heavy log where a few videos
//! please everyone wants heavy regularisation (near-popularity feeds); no single setting
//! serves both (`make eval`). So a tuned refit fits every candidate of a fixed
//! [`LADDER`] on most of the data and keeps the one that ranks the rest best:
//!
//! 1. Hold-out: for every user with at least [`MIN_PAIRS`] pairs, the pairs whose hash
//!    of (seed, user id, item id) falls in one tenth are held out. Hashing ids, not
//!    positions, keeps the split the same whatever the order the events came in.
//! 2. Relevant: held-out pairs watched at least once to the end (summed watch ratio
//!    ≥ 1, i.e. confidence at least that of one full watch); skips never are.
//! 3. Score: NDCG@10 over (at most [`MAX_USERS`]) users with a relevant held-out pair,
//!    ranking every item the user has no training pair with. With fewer than
//!    [`MIN_USERS`] such users there is nothing to choose by: no tuning.
//! 4. Successive halving (Jamieson & Talwalkar 2016), so the ladder costs less than
//!    four full fits: every candidate is fitted for a third of the sweeps and scored; the
//!    best [`SURVIVORS`] continue from where they stopped for the remaining sweeps (the
//!    sweeps only carry the factors over, so that equals fitting them from scratch, bit
//!    for bit) and are scored again.
//! 5. The best survivor (ties: the first in ladder order) is returned; the caller fits it
//!    on all the data.
//!
//! Everything is a pure function of the data, the options and the seed: the choice is
//! deterministic, like the fit.

use std::collections::HashSet;

use super::als::{self, AlsParams, ModelError, RegularizationScaling};
use super::factors::mix64;
use super::factors::Factors;
use super::feedback::Confidence;
use super::interactions::Interactions;
use super::metrics::Accumulator;
use super::topk::top_k_dot;

/// One setting tried by a tuned refit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub alpha: f64,
    pub regularization: f64,
    pub scaling: RegularizationScaling,
}

const fn candidate(alpha: f64, regularization: f64, scaling: RegularizationScaling) -> Candidate {
    Candidate {
        alpha,
        regularization,
        scaling,
    }
}

/// The candidates, lightest prior first: the untuned defaults (λ per observed pair),
/// then √n-scaled priors from a personal to a near-popularity model (chosen with
/// `make eval`: each is the best of its dataset's search or next to it; see docs/model.md).
pub const LADDER: &[Candidate] = &[
    candidate(2.0, 0.2, RegularizationScaling::Count),
    candidate(1.0, 1.0, RegularizationScaling::Sqrt),
    candidate(10.0, 10.0, RegularizationScaling::Sqrt),
    candidate(10.0, 30.0, RegularizationScaling::Sqrt),
];

/// Users with fewer pairs keep them all for training.
pub const MIN_PAIRS: usize = 5;
/// Users scored per candidate, at most (those with the smallest hashes).
pub const MAX_USERS: usize = 2000;
/// Fewer scorable users than this and the choice would be noise: no tuning.
pub const MIN_USERS: usize = 50;
/// Length of the ranked lists scored.
const K: usize = 10;
/// Candidates fitted to the end (the others stop after the first stage).
pub const SURVIVORS: usize = 2;

/// What a tuned refit tried and chose.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub chosen: Candidate,
    /// Each candidate, in ladder order, with its last hold-out NDCG@10 (None: the fit
    /// did not converge) and the sweeps it had then.
    pub scores: Vec<Scored>,
    /// Users scored.
    pub users: usize,
}

/// One candidate's last score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scored {
    pub candidate: Candidate,
    pub ndcg: Option<f64>,
    pub sweeps: usize,
}

fn pair_hash(seed: u64, user: i64, item: i64) -> u64 {
    mix64(mix64(mix64(seed ^ 0x7475_6e65) ^ user.cast_unsigned()) ^ item.cast_unsigned())
}

/// Re-weights `data` in place from `alpha = from` to `alpha = to`: watched pairs (p = 1)
/// get the confidence they would have had with `to` (`ratio`: c = α·R scales by
/// `to / from`; the others, c = 1 + α·f(R): `c − 1` does); skips keep theirs.
// Exact equality on purpose: an unchanged value needs no rescaling.
// f64 -> f32 on purpose: computed in f64, rounded once to the stored f32 precision.
#[allow(clippy::float_cmp, clippy::cast_possible_truncation)]
pub fn set_alpha(data: &mut Interactions, form: Confidence, from: f64, to: f64) {
    if from <= 0.0 || from == to {
        return;
    }
    let scale = to / from;
    let map = |c: &mut f32, p: f32| {
        if p > 0.0 {
            *c = match form {
                Confidence::Ratio => (f64::from(*c) * scale) as f32,
                _ => (1.0 + (f64::from(*c) - 1.0) * scale) as f32,
            };
        }
    };
    for (c, &p) in data.user_conf.iter_mut().zip(&data.user_pref) {
        map(c, p);
    }
    for (c, &p) in data.item_conf.iter_mut().zip(&data.item_pref) {
        map(c, p);
    }
}

/// The hold-out split: training data (same users and items, fewer pairs) and, per scored
/// user, the dense index and the ids of its relevant held-out items.
pub struct Split {
    pub train: Interactions,
    pub relevant: Vec<(u32, HashSet<i64>)>,
}

/// Splits `data` (see the module doc); `full_watch` is the confidence of one full watch
/// under the options the data was built with.
// Indices below u32::MAX: users and items are u32 indices (the model's index space).
#[allow(clippy::cast_possible_truncation)]
pub fn split(
    data: &Interactions,
    user_ids: &[i64],
    item_ids: &[i64],
    seed: u64,
    full_watch: f32,
) -> Split {
    let mut ptr = Vec::with_capacity(data.n_users + 1);
    ptr.push(0);
    let (mut kept_items, mut kept_conf, mut kept_pref) = (Vec::new(), Vec::new(), Vec::new());
    let mut scored: Vec<(u64, u32, HashSet<i64>)> = Vec::new();
    debug_assert_eq!(user_ids.len(), data.n_users);
    for (u, &user_id) in user_ids.iter().enumerate() {
        let (items, conf, pref) = data.user_row(u);
        let held =
            |j: usize| pair_hash(seed, user_id, item_ids[items[j] as usize]).is_multiple_of(10);
        let holds = items.len() >= MIN_PAIRS && (0..items.len()).any(|j| !held(j));
        let mut relevant = HashSet::new();
        for j in 0..items.len() {
            if holds && held(j) {
                if pref[j] > 0.0 && conf[j] >= full_watch {
                    relevant.insert(item_ids[items[j] as usize]);
                }
            } else {
                kept_items.push(items[j]);
                kept_conf.push(conf[j]);
                kept_pref.push(pref[j]);
            }
        }
        ptr.push(kept_items.len());
        if !relevant.is_empty() {
            scored.push((mix64(seed ^ user_id.cast_unsigned()), u as u32, relevant));
        }
    }
    scored.sort_by_key(|s| (s.0, s.1));
    scored.truncate(MAX_USERS);
    scored.sort_by_key(|s| s.1);
    // Rows stay sorted by item: they are the data's rows with entries left out.
    let mut train = Interactions::from_user_rows(
        data.n_users,
        data.n_items,
        ptr,
        kept_items,
        kept_conf,
        kept_pref,
    );
    train.missing_weight.clone_from(&data.missing_weight);
    Split {
        train,
        relevant: scored.into_iter().map(|(_, u, r)| (u, r)).collect(),
    }
}

/// Hold-out NDCG@10 of the factors fitted on `train` (None, too, once `stop` is raised).
fn score(
    train: &Interactions,
    relevant: &[(u32, HashSet<i64>)],
    item_ids: &[i64],
    users: &Factors,
    items: &Factors,
    stop: &als::Control,
) -> Option<f64> {
    let mut acc = Accumulator::default();
    for (u, relevant) in relevant {
        if als::stopped(stop) {
            return None;
        }
        let (seen, _, _) = train.user_row(*u as usize);
        let ranked: Vec<i64> = top_k_dot(users.row(*u as usize), items, K, seen)
            .into_iter()
            .map(|(i, _)| item_ids[i as usize])
            .collect();
        acc.add(&ranked, relevant, K);
    }
    let m = acc.finish(item_ids.len());
    (m.users > 0).then_some(m.ndcg)
}

/// How the confidences of the data handed to [`choose`] were built.
#[derive(Clone, Copy, Debug)]
pub struct Built {
    pub form: Confidence,
    pub alpha: f64,
    /// The confidence of one full watch (summed watch ratio 1).
    pub full_watch: f32,
}

/// Why a tuned refit kept the options it was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skipped {
    /// Fewer than [`MIN_USERS`] users have a held-out full watch.
    TooFewUsers { users: usize },
    /// No candidate's fit converged.
    NoCandidateConverged,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skipped::TooFewUsers { users } => write!(
                f,
                "{users} users with a held-out full watch, fewer than the {MIN_USERS} tuning needs"
            ),
            Skipped::NoCandidateConverged => write!(f, "no candidate's fit converged"),
        }
    }
}

/// Tries every [`LADDER`] candidate on the hold-out split of `data` (`base` gives the
/// other ALS parameters). `Ok(Err)` when there is nothing to choose by (too little data,
/// or no fit converged): the caller keeps its own options. `Err(ModelError::Stopped)`
/// soon after another thread raises `stop` (checked by every fit, see
/// [`als::fit_stoppable`], and between the users scored); while it is not raised, the
/// outcome does not depend on it.
// f64 -> f32 on purpose: computed in f64, rounded once to the stored f32 precision.
#[allow(clippy::cast_possible_truncation)]
pub fn choose(
    data: &Interactions,
    user_ids: &[i64],
    item_ids: &[i64],
    built: Built,
    base: &AlsParams,
    pool: &rayon::ThreadPool,
    stop: &als::Control,
) -> Result<Result<Outcome, Skipped>, ModelError> {
    let Built {
        form,
        alpha,
        full_watch,
    } = built;
    let split = split(data, user_ids, item_ids, base.seed, full_watch);
    if split.relevant.len() < MIN_USERS {
        return Ok(Err(Skipped::TooFewUsers {
            users: split.relevant.len(),
        }));
    }
    let mut train = split.train;
    // Each candidate re-weights the confidences as built, not the previous candidate's.
    let built = (train.user_conf.clone(), train.item_conf.clone());
    let mut fit = |c: Candidate, sweeps: usize, start: Option<(Factors, Factors)>| {
        train.user_conf.copy_from_slice(&built.0);
        train.item_conf.copy_from_slice(&built.1);
        set_alpha(&mut train, form, alpha, c.alpha);
        let params = AlsParams {
            iterations: sweeps,
            regularization: c.regularization as f32,
            regularization_scaling: c.scaling,
            ..base.clone()
        };
        let fitted = match start {
            Some((users, items)) => {
                als::fit_warm_stoppable(&train, &params, pool, users, items, stop)
            }
            None => als::fit_stoppable(&train, &params, pool, stop),
        };
        let scored = fitted.ok().and_then(|(users, items, _)| {
            score(&train, &split.relevant, item_ids, &users, &items, stop)
                .map(|s| (s, users, items))
        });
        // A stopped fit or score is no verdict on the candidate: the choice is abandoned.
        if als::stopped(stop) {
            Err(ModelError::Stopped)
        } else {
            Ok(scored)
        }
    };

    // Stage 1: every candidate, a third of the sweeps; the best SURVIVORS keep their
    // factors (ties: ladder order, as the sort is stable).
    let total = base.iterations;
    let first = (total / 3).max(1).min(total);
    let mut scores = Vec::with_capacity(LADDER.len());
    let mut kept: Vec<(f64, usize, Factors, Factors)> = Vec::with_capacity(SURVIVORS + 1);
    for (n, &c) in LADDER.iter().enumerate() {
        let fitted = fit(c, first, None)?;
        scores.push(Scored {
            candidate: c,
            ndcg: fitted.as_ref().map(|f| f.0),
            sweeps: first,
        });
        if let Some((s, users, items)) = fitted {
            kept.push((s, n, users, items));
            kept.sort_by(|a, b| b.0.total_cmp(&a.0));
            kept.truncate(SURVIVORS);
        }
    }
    // Stage 2: the survivors go on to the full number of sweeps.
    kept.sort_by_key(|k| k.1);
    let finals: Vec<(Option<f64>, usize)> = if first < total {
        let mut finals = Vec::with_capacity(kept.len());
        for (_, n, users, items) in kept {
            let s = fit(LADDER[n], total - first, Some((users, items)))?.map(|f| f.0);
            scores[n] = Scored {
                candidate: LADDER[n],
                ndcg: s,
                sweeps: total,
            };
            finals.push((s, n));
        }
        finals
    } else {
        kept.into_iter().map(|(s, n, _, _)| (Some(s), n)).collect()
    };
    let mut best: Option<(f64, Candidate)> = None;
    for (s, n) in finals {
        if let Some(v) = s {
            if best.is_none_or(|(b, _)| v > b) {
                best = Some((v, LADDER[n]));
            }
        }
    }
    Ok(best
        .map(|(_, chosen)| Outcome {
            chosen,
            scores,
            users: split.relevant.len(),
        })
        .ok_or(Skipped::NoCandidateConverged))
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

    fn toy() -> (Interactions, Vec<i64>, Vec<i64>) {
        // 400 users in two taste groups over 30 items, every user with 12 pairs.
        let mut entries = Vec::new();
        for u in 0..400u32 {
            for j in 0..12u32 {
                let item = if u % 2 == 0 { j } else { 15 + j };
                entries.push(Entry {
                    user: u,
                    item: (item + u / 2) % 30,
                    confidence: 2.0 + (j % 3) as f32,
                    preference: if j % 5 == 4 { 0.0 } else { 1.0 },
                });
            }
        }
        let data = Interactions::from_entries(400, 30, &entries);
        (data, (100..500).collect(), (500..530).collect())
    }

    #[test]
    fn split_holds_out_a_tenth_and_never_trains_on_it() {
        let (data, users, items) = toy();
        let s = split(&data, &users, &items, 7, 2.0);
        let held = data.nnz() - s.train.nnz();
        assert!(
            held > 0 && held < data.nnz() / 4,
            "held {held} of {}",
            data.nnz()
        );
        for (u, relevant) in &s.relevant {
            let (train_items, _, _) = s.train.user_row(*u as usize);
            for id in relevant {
                let i = items.iter().position(|x| x == id).unwrap() as u32;
                assert!(!train_items.contains(&i));
                // relevant pairs were watched (p = 1) with confidence >= a full watch
                let (all, conf, pref) = data.user_row(*u as usize);
                let j = all.iter().position(|&x| x == i).unwrap();
                assert!(pref[j] > 0.0 && conf[j] >= 2.0);
            }
        }
        // Same seed, same split; another seed, another split.
        let again = split(&data, &users, &items, 7, 2.0);
        assert_eq!(again.train, s.train);
        assert_ne!(split(&data, &users, &items, 8, 2.0).train, s.train);
    }

    #[test]
    fn reweighting_follows_the_confidence_form() {
        let (data, _, _) = toy();
        let reweighted = |form| {
            let mut d = data.clone();
            set_alpha(&mut d, form, 2.0, 6.0);
            d
        };
        let (r, l) = (reweighted(Confidence::Ratio), reweighted(Confidence::Log));
        for k in 0..data.nnz() {
            let (c, p) = (data.user_conf[k], data.user_pref[k]);
            if p > 0.0 {
                assert_eq!(r.user_conf[k], c * 3.0);
                assert_eq!(l.user_conf[k], 1.0 + (c - 1.0) * 3.0);
            } else {
                assert_eq!((r.user_conf[k], l.user_conf[k]), (c, c));
            }
        }
        // the item side is the same pairs
        let total = |d: &Interactions| {
            (
                d.user_conf.iter().sum::<f32>(),
                d.item_conf.iter().sum::<f32>(),
            )
        };
        let (a, b) = total(&r);
        assert!((a - b).abs() < 1e-3);
    }

    #[test]
    fn choice_is_deterministic_and_halves_the_ladder() {
        let (data, users, items) = toy();
        let built = Built {
            form: Confidence::Ratio,
            alpha: 2.0,
            full_watch: 2.0,
        };
        let never = als::Control::new();
        let run = |iterations, threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let base = AlsParams {
                factors: 4,
                iterations,
                seed: 3,
                ..AlsParams::default()
            };
            choose(&data, &users, &items, built, &base, &pool, &never)
                .unwrap()
                .unwrap()
        };
        // A raised stop flag abandons the choice.
        let stop = als::Control::new();
        stop.raise();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let base = AlsParams {
            factors: 4,
            iterations: 6,
            seed: 3,
            ..AlsParams::default()
        };
        assert_eq!(
            choose(&data, &users, &items, built, &base, &pool, &stop).unwrap_err(),
            ModelError::Stopped
        );
        // 6 sweeps: a first stage of 2 for every candidate, 4 more for the survivors.
        let (a, b) = (run(6, 1), run(6, 2));
        assert_eq!(a.chosen, b.chosen);
        assert_eq!(a.scores, b.scores);
        assert_eq!(a.scores.len(), LADDER.len());
        assert!(a.scores.iter().all(|s| s.ndcg.is_some()));
        let survivors: Vec<&Scored> = a.scores.iter().filter(|s| s.sweeps == 6).collect();
        assert_eq!(survivors.len(), SURVIVORS);
        assert!(a.scores.iter().all(|s| s.sweeps == 6 || s.sweeps == 2));

        // Scores of fits from scratch, as a check: the first stage is every candidate's
        // 2-sweep fit; the survivors are its best two and the others keep its scores;
        // a survivor's score is that of a 6-sweep fit, bit for bit.
        let split = split(&data, &users, &items, 3, 2.0);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let scratch = |c: Candidate, iterations| {
            let mut train = split.train.clone();
            set_alpha(&mut train, Confidence::Ratio, 2.0, c.alpha);
            let params = AlsParams {
                factors: 4,
                iterations,
                seed: 3,
                regularization: c.regularization as f32,
                regularization_scaling: c.scaling,
                ..AlsParams::default()
            };
            let (u, i, _) = als::fit(&train, &params, &pool).unwrap();
            score(&train, &split.relevant, &items, &u, &i, &never).unwrap()
        };
        let stage1: Vec<f64> = LADDER.iter().map(|&c| scratch(c, 2)).collect();
        let mut order: Vec<usize> = (0..LADDER.len()).collect();
        order.sort_by(|&x, &y| stage1[y].total_cmp(&stage1[x]));
        for (n, s) in a.scores.iter().enumerate() {
            if order[..SURVIVORS].contains(&n) {
                assert_eq!(s.sweeps, 6, "{n}");
                assert_eq!(s.ndcg, Some(scratch(s.candidate, 6)), "{n}");
            } else {
                assert_eq!(s.sweeps, 2, "{n}");
                assert_eq!(s.ndcg, Some(stage1[n]), "{n}");
            }
        }

        // The chosen one is the best survivor.
        let best = survivors
            .iter()
            .map(|s| s.ndcg.unwrap())
            .fold(f64::MIN, f64::max);
        let first_best = survivors.iter().find(|s| s.ndcg == Some(best)).unwrap();
        assert_eq!(first_best.candidate, a.chosen);
    }
}
