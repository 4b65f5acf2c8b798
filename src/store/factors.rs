//! The fitted model as stored: metadata rows in `<table>_model` and factor chunks in
//! `<table>_users` / `<table>_items`.
//!
//! Factor chunks are portable blobs (storage format 1): `ids` is little-endian i64 per
//! row; `factors` is little-endian f32, row-major, `dim` values per row; `popularity`
//! is little-endian f32 per row. The i-th id owns the i-th row. A file may come from
//! anywhere, so every shape is checked when it is decoded.

use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};

use super::{Shadow, Within, CHUNK_ROWS};
use crate::error::{Error, Result};
use crate::model::factors::MAX_FACTORS;
use crate::model::Factors;

/// A fitted model as stored: ids, factors, popularity and metadata.
#[derive(Debug)]
pub struct StoredModel {
    pub user_ids: Vec<i64>,
    pub users: Factors,
    /// Per stored user: the digest of the events the refit learned from
    /// (`model::feedback::events_digest`); empty for a model stored before digests.
    pub user_digests: Vec<u64>,
    pub item_ids: Vec<i64>,
    pub items: Factors,
    pub popularity: Vec<f32>,
    pub meta: ModelMeta,
}

/// The `<table>_model` rows.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelMeta {
    /// 1 for the first refit, then +1 per refit.
    pub version: i64,
    /// Unique per refit: the key of per-connection caches of decoded factors.
    pub tag: String,
    /// Events with rowid <= this were part of the fit.
    pub events_upto: i64,
    /// The JSON report returned by the refit that wrote this model.
    pub report: String,
    /// The newest event `ts` seen by the refit: "now" for recency decay.
    pub newest_ts: i64,
    /// The training options of that refit, as a JSON object (what fold-in must reuse).
    pub options: String,
}

/// One decoded `<table>_users` or `<table>_items`.
struct Chunks {
    ids: Vec<i64>,
    data: Vec<f32>,
    popularity: Vec<f32>,
    /// Some ids or factors blob's length was not a whole number of values.
    partial: bool,
    partial_popularity: bool,
}

fn le_i64(bytes: &[u8]) -> impl Iterator<Item = i64> + '_ {
    bytes
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
}

fn le_f32(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn f32_blob(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl Shadow {
    fn damaged(&self, part: &'static str, detail: String) -> Error {
        Error::Damaged {
            table: self.table.clone(),
            part,
            detail,
        }
    }

    /// The tag of the stored model, if any: one indexed lookup, done on every serve.
    pub fn model_tag(&self, conn: &Connection) -> Result<Option<String>> {
        let mut stmt = conn.prepare_cached(&self.sql.model_tag)?;
        let tag: Option<Value> = stmt.query_row([], |row| row.get(0)).optional()?;
        match tag {
            None => Ok(None),
            Some(Value::Text(tag)) => Ok(Some(tag)),
            Some(_) => Err(self.damaged("model", "the tag is not text".into())),
        }
    }

    /// The `<table>_model` rows, or None before the first refit.
    pub fn model_meta(&self, conn: &Connection) -> Result<Option<ModelMeta>> {
        let mut stmt = conn.prepare_cached(&self.sql.model_rows)?;
        let rows = stmt.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, Value>(1)?))
        })?;
        let (mut version, mut tag, mut upto, mut report, mut newest, mut options) =
            (None, None, None, None, None, None);
        for row in rows {
            match row.map_err(|e| self.read_error("model", e))? {
                (k, Value::Integer(v)) if k == "version" => version = Some(v),
                (k, Value::Text(v)) if k == "tag" => tag = Some(v),
                (k, Value::Integer(v)) if k == "events_upto" => upto = Some(v),
                (k, Value::Text(v)) if k == "report" => report = Some(v),
                (k, Value::Integer(v)) if k == "newest_ts" => newest = Some(v),
                (k, Value::Text(v)) if k == "options" => options = Some(v),
                // A known row of the wrong type is damage, not "no model yet".
                (k, v) if ["version", "events_upto", "newest_ts"].contains(&k.as_str()) => {
                    return Err(self.damaged(
                        "model",
                        format!(
                            "the {k} row holds {}, not an INTEGER",
                            super::type_name(v.data_type())
                        ),
                    ));
                }
                (k, v) if ["tag", "report", "options"].contains(&k.as_str()) => {
                    return Err(self.damaged(
                        "model",
                        format!(
                            "the {k} row holds {}, not TEXT",
                            super::type_name(v.data_type())
                        ),
                    ));
                }
                _ => {}
            }
        }
        Ok(match (version, tag, upto, report, newest, options) {
            (
                Some(version),
                Some(tag),
                Some(events_upto),
                Some(report),
                Some(newest_ts),
                Some(options),
            ) => Some(ModelMeta {
                version,
                tag,
                events_upto,
                report,
                newest_ts,
                options,
            }),
            _ => None,
        })
    }

    /// Reads the whole stored model, or None before the first refit.
    pub fn read_model(&self, conn: &Connection) -> Result<Option<StoredModel>> {
        let Some(meta) = self.model_meta(conn)? else {
            return Ok(None);
        };
        let items = self.read_chunks(conn, "items")?;
        let users = self.read_chunks(conn, "users")?;
        let partial_popularity = items.partial_popularity;
        // The item rows fix the embedding size; the user rows must have the same.
        let dim = match items.ids.len() {
            0 => 0,
            rows => items.data.len() / rows,
        };
        let items = self.factors("items", items, dim)?;
        let users = self.factors("users", users, dim)?;
        if partial_popularity || items.popularity.len() != items.ids.len() {
            return Err(self.damaged(
                "items",
                format!(
                    "{} ids for {} popularity values",
                    items.ids.len(),
                    items.popularity.len()
                ),
            ));
        }
        // Popularity is a count of viewers: finite and not negative.
        if let Some(at) = items
            .popularity
            .iter()
            .position(|p| !p.is_finite() || *p < 0.0)
        {
            return Err(self.damaged(
                "items",
                format!("popularity of row {at} is {}", items.popularity[at]),
            ));
        }
        let user_digests = self.read_digests(conn, users.ids.len())?;
        Ok(Some(StoredModel {
            user_ids: users.ids,
            users: users.factors,
            user_digests,
            item_ids: items.ids,
            items: items.factors,
            popularity: items.popularity,
            meta,
        }))
    }

    /// The `user_digests` row: little-endian u64 per stored user, in `<table>_users`
    /// order; empty when the model has none (stored before digests existed).
    fn read_digests(&self, conn: &Connection, users: usize) -> Result<Vec<u64>> {
        let mut stmt = conn.prepare_cached(&self.sql.digests_select)?;
        let value: Option<Value> = stmt.query_row([], |row| row.get(0)).optional()?;
        match value {
            None => Ok(Vec::new()),
            Some(Value::Blob(bytes)) if bytes.len() == users * 8 => Ok(bytes
                .chunks_exact(8)
                .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect()),
            Some(Value::Blob(bytes)) => Err(self.damaged(
                "model",
                format!("{} bytes of user digests for {users} users", bytes.len()),
            )),
            Some(_) => Err(self.damaged("model", "user_digests is not a BLOB".into())),
        }
    }

    /// Checks the shape of decoded chunks: `dim` values per id, 1 ≤ dim ≤ the largest
    /// embedding a refit writes, and no id twice.
    fn factors(&self, part: &'static str, chunks: Chunks, dim: usize) -> Result<Decoded> {
        let rows = chunks.ids.len();
        let whole = !chunks.partial && (part == "users" || rows > 0);
        if !whole || !(1..=MAX_FACTORS).contains(&dim) || chunks.data.len() != rows * dim {
            return Err(self.damaged(
                part,
                format!("{rows} ids for {} factor values", chunks.data.len()),
            ));
        }
        let mut seen = std::collections::HashSet::with_capacity(rows);
        if let Some(twice) = chunks.ids.iter().find(|id| !seen.insert(**id)) {
            let what = if part == "items" { "item" } else { "user" };
            return Err(self.damaged(part, format!("{what} id {twice} is stored twice")));
        }
        // A refit never stores a non-finite factor (it keeps the previous model instead);
        // one would make scores NaN or infinite, and cosines leave [-1, 1].
        if let Some(at) = chunks.data.iter().position(|v| !v.is_finite()) {
            return Err(self.damaged(
                part,
                format!(
                    "factor {} of row {} is {}",
                    at % dim,
                    at / dim,
                    chunks.data[at]
                ),
            ));
        }
        let factors = Factors::from_vec(rows, dim, chunks.data)
            .ok_or_else(|| self.damaged(part, format!("{rows} rows of {dim} factors")))?;
        Ok(Decoded {
            ids: chunks.ids,
            factors,
            popularity: chunks.popularity,
        })
    }

    fn read_chunks(&self, conn: &Connection, part: &'static str) -> Result<Chunks> {
        let sql = if part == "items" {
            &self.sql.items_select
        } else {
            &self.sql.users_select
        };
        let mut stmt = conn.prepare_cached(sql)?;
        let mut rows = stmt.query([])?;
        let mut out = Chunks {
            ids: Vec::new(),
            data: Vec::new(),
            popularity: Vec::new(),
            partial: false,
            partial_popularity: false,
        };
        let blob = |row: &rusqlite::Row<'_>, i: usize, what: &str| -> Result<Vec<u8>> {
            match row.get_ref(i)? {
                rusqlite::types::ValueRef::Blob(b) => Ok(b.to_vec()),
                rusqlite::types::ValueRef::Null if what == "popularity" => Ok(Vec::new()),
                _ => Err(self.damaged(part, format!("{what} is not a BLOB"))),
            }
        };
        while let Some(row) = rows.next()? {
            let (ids, data, popularity) = (
                blob(row, 0, "ids")?,
                blob(row, 1, "factors")?,
                blob(row, 2, "popularity")?,
            );
            out.partial |= ids.len() % 8 != 0 || data.len() % 4 != 0;
            out.partial_popularity |= popularity.len() % 4 != 0;
            out.ids.extend(le_i64(&ids));
            out.data.extend(le_f32(&data));
            out.popularity.extend(le_f32(&popularity));
        }
        Ok(out)
    }

    /// Replaces the stored model. The caller runs this inside [`Shadow::atomically`], so
    /// another connection sees the old model or the new one, never a mix.
    // Chunk numbers: fewer chunks than rows, far below i64::MAX.
    #[allow(clippy::cast_possible_wrap)]
    pub fn write_model(
        &self,
        conn: &Connection,
        model: &StoredModel,
        within: Within,
    ) -> Result<()> {
        let sql = &self.sql;
        let (users_insert, items_insert, model_put) = match within {
            Within::Savepoint => (&sql.users_insert, &sql.items_insert, &sql.model_put),
            Within::Statement => (
                &sql.users_insert_plain,
                &sql.items_insert_plain,
                &sql.model_put_plain,
            ),
        };
        conn.prepare_cached(&self.sql.users_delete)?.execute([])?;
        conn.prepare_cached(&self.sql.items_delete)?.execute([])?;
        let mut users = conn.prepare_cached(users_insert)?;
        for (chunk, (ids, factors)) in chunked(&model.user_ids, &model.users).enumerate() {
            users.execute(params![chunk as i64, ids, factors])?;
        }
        let mut items = conn.prepare_cached(items_insert)?;
        for (chunk, (ids, factors)) in chunked(&model.item_ids, &model.items).enumerate() {
            let first = chunk * CHUNK_ROWS;
            let popularity = f32_blob(&model.popularity[first..first + ids.len() / 8]);
            items.execute(params![chunk as i64, ids, factors, popularity])?;
        }
        let mut put = conn.prepare_cached(model_put)?;
        let meta = &model.meta;
        put.execute(params!["version", meta.version])?;
        put.execute(params!["tag", meta.tag])?;
        put.execute(params!["events_upto", meta.events_upto])?;
        put.execute(params!["report", meta.report])?;
        put.execute(params!["newest_ts", meta.newest_ts])?;
        put.execute(params!["options", meta.options])?;
        // When this model was written (Unix seconds), for people and tools reading the
        // file; nothing in foryou reads it back.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        put.execute(params!["refitted_at", now])?;
        conn.prepare_cached(&self.sql.digests_delete)?.execute([])?;
        if !model.user_digests.is_empty() {
            let blob: Vec<u8> = model
                .user_digests
                .iter()
                .flat_map(|d| d.to_le_bytes())
                .collect();
            put.execute(params!["user_digests", blob])?;
        }
        Ok(())
    }
}

/// Decoded, shape-checked chunks.
struct Decoded {
    ids: Vec<i64>,
    factors: Factors,
    popularity: Vec<f32>,
}

/// (ids blob, factors blob) of each chunk of [`CHUNK_ROWS`] rows.
fn chunked<'a>(
    ids: &'a [i64],
    factors: &'a Factors,
) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + 'a {
    (0..ids.len()).step_by(CHUNK_ROWS).map(move |first| {
        let last = (first + CHUNK_ROWS).min(ids.len());
        let id_blob = ids[first..last]
            .iter()
            .flat_map(|id| id.to_le_bytes())
            .collect();
        (
            id_blob,
            f32_blob(&factors.data[first * factors.dim..last * factors.dim]),
        )
    })
}
