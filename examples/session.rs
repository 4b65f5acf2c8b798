//! A simulated short-video app on top of `foryou`.
//!
//! A catalogue of videos in a few genres, and users who each secretly love one or two
//! genres. Every session shows a user ~20 videos; a video of a favourite genre is
//! watched to the end or replayed, any other is swiped away after a second or two.
//! Only the watch events reach the database: the model has to find the tastes.
//!
//!   session <file.db>   the demo (`make demo`): writes the file, prints what happens
//!   session --check     the test (`make example`): smaller, in memory, asserts
//!
//! Deterministic: a seeded splitmix64 generator drives the simulation and the model
//! has a fixed seed, so every run prints the same numbers.

// Test data: counts, ids, ranks and timestamps far inside every integer type they are cast to.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::exit;

use rusqlite::{params, Connection};

const GENRES: [&str; 6] = ["comedy", "cooking", "dance", "gaming", "pets", "travel"];

/// Sizes of one simulation.
struct Setup {
    videos_per_genre: usize,
    users: usize,
    sessions_per_user: usize,
    videos_per_session: usize,
    /// `CREATE VIRTUAL TABLE feed USING foryou(<options>)`.
    options: &'static str,
}

/// The world of both modes: `--check` tests exactly what the demo shows (in memory,
/// well under a second).
const WORLD: Setup = Setup {
    videos_per_genre: 60,
    users: 400,
    sessions_per_user: 3,
    videos_per_session: 20,
    options: "skip_ratio = 0.5, regularization = 1, regularization_scaling = none",
};

/// The user whose feed the demo follows, and the genre they discover.
const FOLLOWED_USER: i64 = 9;
/// Videos of the new genre the followed user watches to the end.
const DISCOVERY_VIDEOS: usize = 8;

/// splitmix64: small, fast, good enough for a simulation, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, n).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Video ids tell their genre: genre g (0-based) holds ids (g+1)*100 + 1 ..= (g+1)*100 + n.
fn video_id(genre: usize, j: usize) -> i64 {
    ((genre + 1) * 100 + j + 1) as i64
}

fn genre_of(item_id: i64) -> usize {
    (item_id / 100 - 1) as usize
}

fn fail(message: &str) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    eprintln!("session --check FAILED: {message}");
    exit(1);
}

/// Runs a query, turning an SQL error into a readable failure.
fn sql<T>(what: &str, result: rusqlite::Result<T>) -> T {
    result.unwrap_or_else(|e| fail(&format!("{what}: {e}")))
}

struct World {
    /// Per video id: (genre, duration in seconds).
    durations: Vec<(i64, f64)>,
    /// Per user (id = index + 1): favourite genres.
    tastes: Vec<Vec<usize>>,
}

impl World {
    fn taste(&self, user: i64) -> &[usize] {
        &self.tastes[(user - 1) as usize]
    }
    fn duration(&self, item: i64) -> f64 {
        self.durations
            .iter()
            .find(|(id, _)| *id == item)
            .map(|(_, d)| *d)
            .unwrap()
    }
    fn taste_names(&self, user: i64) -> String {
        self.taste(user)
            .iter()
            .map(|&g| GENRES[g])
            .collect::<Vec<_>>()
            .join(" + ")
    }
}

/// Creates the catalogue, the hidden tastes and the `feed` model, and simulates every
/// session. Returns the world (what only the simulation knows).
fn simulate(conn: &Connection, setup: &Setup, rng: &mut Rng) -> World {
    let mut durations = Vec::new();
    for g in 0..GENRES.len() {
        for j in 0..setup.videos_per_genre {
            durations.push((video_id(g, j), rng.below(53) as f64 + 8.0)); // 8..=60 s
        }
    }
    let tastes: Vec<Vec<usize>> = (0..setup.users)
        .map(|_| {
            let first = rng.below(GENRES.len());
            let mut taste = vec![first];
            if rng.below(2) == 0 {
                taste.push((first + 1 + rng.below(GENRES.len() - 1)) % GENRES.len());
            }
            taste.sort_unstable();
            taste
        })
        .collect();

    sql(
        "create the demo tables",
        conn.execute_batch(&format!(
            "CREATE TABLE videos(item_id INTEGER PRIMARY KEY, genre TEXT NOT NULL, duration REAL NOT NULL);
             CREATE TABLE hidden_tastes(user_id INTEGER NOT NULL, genre TEXT NOT NULL);
             CREATE VIRTUAL TABLE feed USING foryou({});
             CREATE TEMP TABLE watch_log(user_id INTEGER, item_id INTEGER, watch_time REAL, duration REAL, ts INTEGER);",
            setup.options
        )),
    );

    // The simulation writes a plain log table in one transaction, then one
    // INSERT ... SELECT moves it into the model: the bulk path.
    let tx = sql("begin", conn.unchecked_transaction());
    {
        let mut video = sql(
            "prepare",
            tx.prepare("INSERT INTO videos VALUES (?1, ?2, ?3)"),
        );
        for &(id, duration) in &durations {
            sql(
                "insert video",
                video.execute(params![id, GENRES[genre_of(id)], duration]),
            );
        }
        let mut taste = sql(
            "prepare",
            tx.prepare("INSERT INTO hidden_tastes VALUES (?1, ?2)"),
        );
        for (u, genres) in tastes.iter().enumerate() {
            for &g in genres {
                sql(
                    "insert taste",
                    taste.execute(params![u as i64 + 1, GENRES[g]]),
                );
            }
        }
        let mut log = sql(
            "prepare",
            tx.prepare("INSERT INTO watch_log VALUES (?1, ?2, ?3, ?4, ?5)"),
        );
        let mut ts: i64 = 1_700_000_000;
        for session in 0..setup.sessions_per_user {
            for (u, taste) in tastes.iter().enumerate() {
                ts += 1;
                let _ = session;
                for _ in 0..setup.videos_per_session {
                    let (id, duration) = durations[rng.below(durations.len())];
                    let ratio = if taste.contains(&genre_of(id)) {
                        rng.uniform(0.8, 2.0) // watched to the end, or replayed
                    } else {
                        rng.uniform(0.05, 0.3) // swiped away
                    };
                    let watch_time = (ratio * duration * 10.0).round() / 10.0;
                    ts += (watch_time.ceil() as i64).max(1);
                    sql(
                        "log event",
                        log.execute(params![u as i64 + 1, id, watch_time, duration, ts]),
                    );
                }
            }
        }
    }
    sql("commit", tx.commit());
    sql(
        "bulk insert",
        conn.execute_batch(
            "INSERT INTO feed(user_id, item_id, watch_time, duration, ts)
               SELECT user_id, item_id, watch_time, duration, ts FROM watch_log ORDER BY ts;
             DROP TABLE watch_log;",
        ),
    );
    World { durations, tastes }
}

fn refit(conn: &Connection) -> serde_json::Value {
    refit_with(conn, None)
}

/// `foryou_refit('feed', options_json)`: `options_json` overrides training options for one refit.
fn refit_with(conn: &Connection, options_json: Option<&str>) -> serde_json::Value {
    let report: String = sql(
        "foryou_refit",
        conn.query_row("SELECT foryou_refit('feed', ?1)", [options_json], |r| {
            r.get(0)
        }),
    );
    serde_json::from_str(&report).unwrap_or_else(|e| {
        fail(&format!(
            "foryou_refit returned invalid JSON ({e}): {report}"
        ))
    })
}

fn recommend(conn: &Connection, user: i64, k: usize) -> Vec<(i64, f64)> {
    let mut stmt = sql(
        "prepare",
        conn.prepare_cached("SELECT item_id, score FROM recommend(?1, ?2) ORDER BY rank"),
    );
    let rows = sql(
        "recommend",
        stmt.query_map(params![user, k as i64], |r| Ok((r.get(0)?, r.get(1)?))),
    );
    sql("recommend", rows.collect())
}

fn similar(conn: &Connection, item: i64, k: usize) -> Vec<(i64, f64)> {
    let mut stmt = sql(
        "prepare",
        conn.prepare("SELECT item_id, score FROM similar_items(?1, ?2) ORDER BY rank"),
    );
    let rows = sql(
        "similar_items",
        stmt.query_map(params![item, k as i64], |r| Ok((r.get(0)?, r.get(1)?))),
    );
    sql("similar_items", rows.collect())
}

fn watched(conn: &Connection, user: i64) -> BTreeSet<i64> {
    let mut stmt = sql(
        "prepare",
        conn.prepare_cached("SELECT item_id FROM feed WHERE user_id = ?1"),
    );
    let rows = sql("watched", stmt.query_map([user], |r| r.get(0)));
    sql("watched", rows.collect())
}

/// Share of `items` in the user's favourite genres.
fn taste_share(world: &World, user: i64, items: &[i64]) -> f64 {
    let hits = items
        .iter()
        .filter(|&&i| world.taste(user).contains(&genre_of(i)))
        .count();
    hits as f64 / items.len().max(1) as f64
}

/// What a random feed of unwatched videos would score: the share of the user's
/// favourite genres among the videos they have not watched yet.
fn random_share(world: &World, user: i64, watched: &BTreeSet<i64>) -> f64 {
    let unwatched: Vec<i64> = world
        .durations
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !watched.contains(id))
        .collect();
    taste_share(world, user, &unwatched)
}

/// Mean over all users of (taste share of their top 10, taste share of a random feed).
fn mean_shares(conn: &Connection, world: &World) -> (f64, f64) {
    let (mut model, mut random) = (0.0, 0.0);
    for user in 1..=world.tastes.len() as i64 {
        let top: Vec<i64> = recommend(conn, user, 10)
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        model += taste_share(world, user, &top);
        random += random_share(world, user, &watched(conn, user));
    }
    let n = world.tastes.len() as f64;
    (model / n, random / n)
}

/// The same events learnt three ways: (what the model sees, `options_json`, mean taste share).
/// The last refit uses the table's own options, so it leaves that model in place.
fn compare_signals(conn: &Connection, world: &World) -> Vec<(&'static str, &'static str, f64)> {
    [
        (
            "every view is a \"like\" (binary)",
            r#"{"confidence": "binary", "skip_ratio": 0}"#,
        ),
        (
            "watch ratio, swipes count as weak likes",
            r#"{"skip_ratio": 0}"#,
        ),
        ("watch ratio, swipes are dislikes", "{}"),
    ]
    .into_iter()
    .map(|(label, json)| {
        refit_with(conn, Some(json));
        (label, json, mean_shares(conn, world).0)
    })
    .collect()
}

/// The followed user's genre to discover: the first genre that is not a favourite,
/// counting from the one after their first favourite.
fn new_genre(world: &World, user: i64) -> usize {
    let taste = world.taste(user);
    (1..GENRES.len())
        .map(|d| (taste[0] + d) % GENRES.len())
        .find(|g| !taste.contains(g))
        .unwrap()
}

/// The user watches `DISCOVERY_VIDEOS` unwatched videos of `genre` to the end, one
/// INSERT per event as an app would send them. Returns the videos.
fn discover(conn: &Connection, world: &World, user: i64, genre: usize, setup: &Setup) -> Vec<i64> {
    let seen = watched(conn, user);
    let videos: Vec<i64> = (0..setup.videos_per_genre)
        .map(|j| video_id(genre, j))
        .filter(|id| !seen.contains(id))
        .take(DISCOVERY_VIDEOS)
        .collect();
    let mut insert = sql(
        "prepare",
        conn.prepare("INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (?1, ?2, ?3, ?3, ?4)"),
    );
    for (n, &id) in videos.iter().enumerate() {
        sql(
            "insert",
            insert.execute(params![
                user,
                id,
                world.duration(id),
                1_800_000_000 + 60 * n as i64
            ]),
        );
    }
    videos
}

// ---- printing ---------------------------------------------------------------------

/// Prints an aligned table: text columns left-aligned, numeric ones right-aligned.
fn table(headers: &[&str], rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..headers.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].len())
                .chain([headers[c].len()])
                .max()
                .unwrap()
        })
        .collect();
    let numeric: Vec<bool> = (0..headers.len())
        .map(|c| {
            rows.iter()
                .all(|r| r[c].trim_start_matches('-').parse::<f64>().is_ok())
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(c, s)| {
                if numeric[c] {
                    format!("{s:>w$}", w = widths[c])
                } else {
                    format!("{s:<w$}", w = widths[c])
                }
            })
            .collect();
        println!("    {}", parts.join("  ").trim_end());
    };
    line(headers.to_vec());
    line(
        widths
            .iter()
            .map(|&w| "-".repeat(w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    );
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn feed_table(world: &World, user: i64, feed: &[(i64, f64)], mark: Option<usize>) {
    let rows: Vec<Vec<String>> = feed
        .iter()
        .enumerate()
        .map(|(n, &(item, score))| {
            let g = genre_of(item);
            let note = if world.taste(user).contains(&g) {
                "favourite"
            } else if Some(g) == mark {
                "new!"
            } else {
                ""
            };
            vec![
                (n + 1).to_string(),
                item.to_string(),
                GENRES[g].to_string(),
                format!("{:.0}", world.duration(item)),
                format!("{score:.3}"),
                note.to_string(),
            ]
        })
        .collect();
    table(
        &["rank", "item_id", "genre", "secs", "score", "taste"],
        &rows,
    );
}

fn percent(x: f64) -> String {
    format!("{:.0}%", 100.0 * x)
}

/// The shell command that opens `db` with the extension, relative when possible.
fn shell_command(db: &str) -> String {
    let ext = foryou_tests::extension_path();
    let shown = std::env::current_dir()
        .ok()
        .and_then(|cwd| {
            ext.strip_prefix(&cwd)
                .ok()
                .map(|p| format!("./{}", p.display()))
        })
        .unwrap_or_else(|| ext.display().to_string());
    format!("sqlite3 {db} -cmd '.load {shown}'")
}

// ---- the two modes ------------------------------------------------------------------

fn demo(path: &str) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
    let conn = foryou_tests::open(Path::new(path));
    let setup = &WORLD;
    let mut rng = Rng(2024);
    let world = simulate(&conn, setup, &mut rng);
    demo_world(&conn, &world, setup, path);
    demo_feed(&conn, &world, setup);
    demo_signals(&conn, &world);
    demo_discovery(&conn, &world, setup);
    demo_similar(&conn);
    drop(conn);
    let user = FOLLOWED_USER;
    println!(
        "\n{path} holds the tables videos and hidden_tastes and the model feed. Explore it:\n"
    );
    println!("    {}", shell_command(path));
    println!("    sqlite> SELECT rank, item_id, genre FROM recommend({user}, 10) JOIN videos USING (item_id);");
}

/// The demo, part 1: the simulated app and the first refit.
fn demo_world(conn: &Connection, world: &World, setup: &Setup, path: &str) {
    let events: i64 = sql(
        "count",
        conn.query_row("SELECT count(*) FROM feed", [], |r| r.get(0)),
    );
    let version: String = sql(
        "version",
        conn.query_row("SELECT foryou_version()", [], |r| r.get(0)),
    );

    println!("foryou {version}: a simulated short-video app, written to {path}\n");
    println!(
        "1. {} videos in {} genres ({}), 8 to 60 seconds long.",
        world.durations.len(),
        GENRES.len(),
        GENRES.join(", ")
    );
    println!(
        "   {} users, each secretly loving one or two genres, watch {} sessions of {} videos.",
        setup.users, setup.sessions_per_user, setup.videos_per_session
    );
    println!("   A favourite-genre video is watched to the end or replayed (watch ratio 0.8-2.0),");
    println!("   any other is swiped away (0.05-0.3). The {events} watch events go in with one");
    println!("   INSERT INTO feed SELECT ...; the model never sees the tastes.\n");
    println!(
        "   CREATE VIRTUAL TABLE feed USING foryou({});",
        setup.options
    );
    println!("   SELECT foryou_refit('feed');\n");
    println!("   {}\n", refit(conn));
}

/// The demo, part 2: the followed user's feed, and the taste share over all users.
fn demo_feed(conn: &Connection, world: &World, setup: &Setup) {
    let user = FOLLOWED_USER;
    let feed = recommend(conn, user, 10);
    let items: Vec<i64> = feed.iter().map(|(i, _)| *i).collect();
    println!(
        "2. SELECT item_id, score FROM recommend({user}, 10);   -- user {user} secretly loves {}\n",
        world.taste_names(user)
    );
    feed_table(world, user, &feed, None);
    println!(
        "\n   {} of the top 10 are in user {user}'s favourite genres; a random pick of unwatched",
        percent(taste_share(world, user, &items))
    );
    println!(
        "   videos would give {}.",
        percent(random_share(world, user, &watched(conn, user)))
    );
    let (model_share, random) = mean_shares(conn, world);
    println!(
        "   Over all {} users: {} of each top 10 is in a hidden favourite genre (random: {}).\n",
        setup.users,
        percent(model_share),
        percent(random)
    );
}

/// The demo, part 3: the same events learnt from three signals.
fn demo_signals(conn: &Connection, world: &World) {
    println!(
        "3. Why watch time: the same events, refitted with foryou_refit('feed', options_json).\n"
    );
    let rows: Vec<Vec<String>> = compare_signals(conn, world)
        .into_iter()
        .map(|(label, json, share)| vec![label.to_string(), json.to_string(), percent(share)])
        .collect();
    table(
        &[
            "what the model learns from",
            "options_json",
            "top 10 in taste",
        ],
        &rows,
    );
    println!(
        "\n   Every user was shown random videos, so \"who played what\" alone says nothing.\n"
    );
}

/// The demo, part 4: the followed user discovers a new genre (fold-in, then a refit).
fn demo_discovery(conn: &Connection, world: &World, setup: &Setup) {
    let user = FOLLOWED_USER;
    let genre = new_genre(world, user);
    let videos = discover(conn, world, user, genre, setup);
    println!(
        "4. User {user} discovers {}: they watch {} {} videos to the end ({}),",
        GENRES[genre],
        videos.len(),
        GENRES[genre],
        videos
            .iter()
            .map(std::string::ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("   one INSERT each. No refit yet: recommend() folds user {user}'s new events in on the spot.\n");
    let folded = recommend(conn, user, 10);
    let found = folded.iter().filter(|(i, _)| genre_of(*i) == genre).count();
    println!(
        "   SELECT item_id, score FROM recommend({user}, 10);   -- {found} {} videos already\n",
        GENRES[genre]
    );
    feed_table(world, user, &folded, Some(genre));
    let json = r#"{"mode": "incremental"}"#;
    println!("\n   The next refit learns them for good; an incremental one starts from the stored model:");
    println!("   SELECT foryou_refit('feed', '{json}');\n");
    println!("   {}\n", refit_with(conn, Some(json)));
    let after = recommend(conn, user, 10);
    let found = after.iter().filter(|(i, _)| genre_of(*i) == genre).count();
    println!(
        "   recommend({user}, 10) now holds {found} {} and {} {} videos.\n",
        GENRES[genre],
        after
            .iter()
            .filter(|(i, _)| world.taste(user).contains(&genre_of(*i)))
            .count(),
        world.taste_names(user)
    );
}

/// The demo, part 5: the videos most similar to one video.
fn demo_similar(conn: &Connection) {
    let item = video_id(1, 0);
    let near = similar(conn, item, 8);
    println!(
        "5. SELECT item_id, score FROM similar_items({item}, 8);   -- {item} is a {} video\n",
        GENRES[genre_of(item)]
    );
    let rows: Vec<Vec<String>> = near
        .iter()
        .enumerate()
        .map(|(n, &(i, s))| {
            vec![
                (n + 1).to_string(),
                i.to_string(),
                GENRES[genre_of(i)].to_string(),
                format!("{s:.3}"),
            ]
        })
        .collect();
    table(&["rank", "item_id", "genre", "score"], &rows);
}

fn check() {
    let conn = foryou_tests::memory();
    let setup = &WORLD;
    let mut rng = Rng(2024);
    let world = simulate(&conn, setup, &mut rng);
    check_before_refit(&conn);
    check_first_refit(&conn, setup);
    let model_share = check_tastes(&conn, &world, setup);
    check_similar_items(&conn, &world);
    check_signals(&conn, &world, model_share);
    check_discovery(&conn, &world, setup);
    check_discovery_of_many(&conn, &world, setup);
    check_determinism(&conn);
    println!("session --check: ok");
}

/// How many videos of `feed` are of genre `g`.
fn genre_count(feed: &[(i64, f64)], g: usize) -> usize {
    feed.iter().filter(|(i, _)| genre_of(*i) == g).count()
}

/// The stored model's version in a refit report (-1 when absent).
fn report_version(report: &serde_json::Value) -> i64 {
    report["version"].as_i64().unwrap_or(-1)
}

/// `--check`: before any refit, `recommend()` serves popular items and `similar_items()`
/// nothing.
fn check_before_refit(conn: &Connection) {
    if recommend(conn, 1, 10).len() != 10 {
        fail("recommend(1, 10) before the first refit should list 10 popular videos");
    }
    if !similar(conn, video_id(0, 0), 5).is_empty() {
        fail("similar_items() before the first refit should be empty");
    }
}

/// `--check`: the first refit sees every event and stores version 1.
fn check_first_refit(conn: &Connection, setup: &Setup) {
    let report = refit(conn);
    let expected_events = (setup.users * setup.sessions_per_user * setup.videos_per_session) as i64;
    if report["events"].as_i64() != Some(expected_events) || report_version(&report) != 1 {
        fail(&format!(
            "the first refit should report {expected_events} events and version 1: {report}"
        ));
    }
}

/// `--check`: `recommend()` finds the hidden tastes and never lists a watched video;
/// returns the mean top-10 taste share.
fn check_tastes(conn: &Connection, world: &World, setup: &Setup) -> f64 {
    let (model_share, random) = mean_shares(conn, world);
    println!(
        "session --check: top-10 share in hidden favourite genres {model_share:.2} over {} users (random feed {random:.2})",
        setup.users
    );
    if random > 0.35 {
        fail(&format!(
            "the simulation is off: a random feed already has a taste share of {random:.2}"
        ));
    }
    if model_share < 0.6 || model_share < random + 0.3 {
        fail(&format!(
            "recommend() should find the hidden tastes: mean top-10 share {model_share:.2}, want > 0.60 and well above random {random:.2}"
        ));
    }

    for user in 1..=world.tastes.len() as i64 {
        let seen = watched(conn, user);
        if let Some((item, _)) = recommend(conn, user, 10)
            .into_iter()
            .find(|(i, _)| seen.contains(i))
        {
            fail(&format!(
                "recommend({user}, 10) lists video {item}, which the user already watched"
            ));
        }
    }
    model_share
}

/// `--check`: the 10 nearest videos of a video are mostly of its genre.
fn check_similar_items(conn: &Connection, world: &World) {
    let mut same = 0;
    for &(item, _) in &world.durations {
        let near: Vec<i64> = similar(conn, item, 10)
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        if near.len() != 10 || near.contains(&item) {
            fail(&format!(
                "similar_items({item}, 10) should list 10 other videos: {near:?}"
            ));
        }
        same += near
            .iter()
            .filter(|&&i| genre_of(i) == genre_of(item))
            .count();
    }
    let same = same as f64 / (10 * world.durations.len()) as f64;
    println!("session --check: similar_items share of the same genre {same:.2}");
    if same < 0.7 {
        fail(&format!("similar_items(item, 10) should mostly list videos of the item's genre: share {same:.2}, want > 0.70"));
    }
}

/// `--check`, the thesis: watch time carries the taste; "who played what" does not.
fn check_signals(conn: &Connection, world: &World, model_share: f64) {
    let compared = compare_signals(conn, world);
    for (label, json, share) in &compared {
        println!("session --check: {label} ({json}): share {share:.2}");
    }
    let (binary, watch_time) = (compared[0].2, compared[2].2);
    if watch_time < binary + 0.3 {
        fail(&format!("watch-time confidence ({watch_time:.2}) should beat binary feedback ({binary:.2}) by far"));
    }
    if (watch_time - model_share).abs() > 1e-9 {
        fail(&format!("refitting with the same options should give the same model: share {watch_time} then {model_share}"));
    }
}

/// `--check`, discovery: the new genre shows up at once (fold-in), and stays after a refit.
fn check_discovery(conn: &Connection, world: &World, setup: &Setup) {
    let user = FOLLOWED_USER;
    let genre = new_genre(world, user);
    let before = genre_count(&recommend(conn, user, 10), genre);
    discover(conn, world, user, genre, setup);
    let folded = recommend(conn, user, 10);
    let stored: i64 = sql(
        "version",
        conn.query_row(
            "SELECT value FROM feed_model WHERE key = 'version'",
            [],
            |r| r.get(0),
        ),
    );
    let report = refit_with(conn, Some(r#"{"mode": "incremental"}"#));
    if report_version(&report) != stored + 1 || report["mode"] != "incremental" {
        fail(&format!(
            "an incremental refit should report mode incremental and version {}: {report}",
            stored + 1
        ));
    }
    let after = recommend(conn, user, 10);
    println!(
        "session --check: user {user} ({}) watched {DISCOVERY_VIDEOS} {} videos: {before} -> {} (folded in) -> {} (refit) of them in the top 10",
        world.taste_names(user),
        GENRES[genre],
        genre_count(&folded, genre),
        genre_count(&after, genre)
    );
    for (when, feed) in [
        ("right away (fold-in)", &folded),
        ("after an incremental refit", &after),
    ] {
        if genre_count(feed, genre) == 0 {
            fail(&format!(
                "after watching {DISCOVERY_VIDEOS} {} videos, user {user}'s top 10 should include {} {when}: {feed:?}",
                GENRES[genre], GENRES[genre]
            ));
        }
    }
}

/// `--check`: the same discovery for 20 more users at once: most of them must see their
/// new genre.
fn check_discovery_of_many(conn: &Connection, world: &World, setup: &Setup) {
    let user = FOLLOWED_USER;
    let others: Vec<i64> = (1..=21).filter(|&u| u != user).take(20).collect();
    let genres: Vec<usize> = others.iter().map(|&u| new_genre(world, u)).collect();
    for (&u, &g) in others.iter().zip(&genres) {
        discover(conn, world, u, g, setup);
    }
    let reached = |conn: &Connection| {
        others
            .iter()
            .zip(&genres)
            .filter(|&(&u, &g)| genre_count(&recommend(conn, u, 10), g) > 0)
            .count()
    };
    let folded = reached(conn);
    refit(conn);
    let refitted = reached(conn);
    println!(
        "session --check: of {} more discovering users, {folded} see their new genre at once, {refitted} after a full refit",
        others.len()
    );
    for (when, n) in [
        ("right away (fold-in)", folded),
        ("after a full refit", refitted),
    ] {
        if n * 10 < others.len() * 6 {
            fail(&format!(
                "after a discovery, at least 60% of users should see the new genre in their top 10 {when}; {n} of {} did",
                others.len()
            ));
        }
    }
}

/// `--check`, determinism: one worker thread gives the very same factors as the default pool.
fn check_determinism(conn: &Connection) {
    let blobs = |conn: &Connection| -> Vec<Vec<u8>> {
        let mut stmt = sql(
            "prepare",
            conn.prepare("SELECT factors FROM feed_users UNION ALL SELECT factors FROM feed_items"),
        );
        let rows = sql("read factors", stmt.query_map([], |r| r.get(0)));
        sql("read factors", rows.collect())
    };
    let pooled = blobs(conn);
    let report = refit_with(conn, Some(r#"{"threads": 1}"#));
    if blobs(conn) != pooled {
        fail(&format!(
            "a refit on 1 thread should store the same factors as the default pool: {report}"
        ));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag] if flag == "--check" => check(),
        [path] if !path.starts_with('-') => demo(path),
        _ => {
            eprintln!(
                "usage: session <file.db>   (the demo: writes the file and prints a walk-through)"
            );
            eprintln!("       session --check     (the test: asserts, in memory)");
            exit(2);
        }
    }
}
