//! The errors of `foryou_refit`'s `mode`, and of an incremental refit asked for another
//! embedding size, through SQL; each leaves the stored model as it was.

mod common;

use common::*;

#[test]
fn mode_errors_and_the_incremental_factor_count_mismatch() {
    let conn = memory();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE feed USING foryou(factors = 4, iterations = 3, seed = 1, tune = false)",
    )
    .unwrap();
    checkerboard(&conn, "feed");
    refit(&conn, "SELECT foryou_refit()");
    let before = factor_blobs(&conn, "feed", "items");
    for (sql, want) in [
        (
            r#"SELECT foryou_refit('feed', '{"mode": "fast"}')"#,
            r#"foryou_refit: option mode expects "full" or "incremental", got "fast""#,
        ),
        (
            r#"SELECT foryou_refit('feed', '{"mode": "Incremental"}')"#,
            r#"foryou_refit: option mode expects "full" or "incremental", got "Incremental""#,
        ),
        (
            r#"SELECT foryou_refit('feed', '{"mode": "incremental", "factors": 8}')"#,
            "foryou_refit: an incremental refit keeps the stored model's 4 factors, but factors = 8 was asked; run a full refit to change it",
        ),
    ] {
        assert_eq!(error_of(&conn, sql), want, "{sql}");
        assert_eq!(factor_blobs(&conn, "feed", "items"), before, "{sql}");
    }
    // The same factor count, and a full refit with another, are fine.
    let report = refit(
        &conn,
        r#"SELECT foryou_refit('feed', '{"mode": "incremental", "factors": 4}')"#,
    );
    assert_eq!(report["mode"], "incremental");
    let report = refit(&conn, r#"SELECT foryou_refit('feed', '{"factors": 8}')"#);
    assert_eq!(
        (report["mode"].as_str(), report["factors"].as_i64()),
        (Some("full"), Some(8))
    );
}
