-- make kernels: run at the detected kernel level and at each forced one
-- (FORYOU_KERNELS=scalar|avx2); the outputs must be identical, byte for byte: the factor
-- bits of a tuned full refit and of an incremental one, served scores (to 9 significant
-- digits, every bit of an f32), fold-in, similar items and metrics. foryou_debug() is
-- left out (its simd line names the level).
.mode list
CREATE VIRTUAL TABLE feed USING foryou(factors = 24, iterations = 8, seed = 7, explore = 0.2,
  skip_seconds = 2);
INSERT INTO feed(user_id, item_id, watch_time, duration, ts)
  SELECT u.value, 1 + (u.value * 7 + n.value * 13 + (u.value % 5) * n.value) % 300,
         (u.value * 31 + n.value * 17) % 40 + 0.5, 30, 1700000000 + u.value * 100 + n.value
  FROM generate_series(1, 200) AS u, generate_series(1, 25) AS n;
SELECT json_remove(foryou_refit(), '$.seconds', '$.threads');
SELECT 'users', chunk, hex(ids), hex(factors) FROM feed_users;
SELECT 'items', chunk, hex(ids), hex(factors), hex(popularity) FROM feed_items;
SELECT 'recommend', u.value, r.rank, r.item_id, printf('%.9g', r.score)
  FROM generate_series(1, 200, 7) AS u, recommend(u.value, 12) AS r;
-- Fold-in: new events of known and new users, served before any refit.
INSERT INTO feed(user_id, item_id, watch_time, duration, ts)
  SELECT 1 + n.value % 3 * 500, 1 + n.value * 11 % 300, 29, 30, 1800000000 + n.value
  FROM generate_series(1, 9) AS n;
SELECT 'folded', u.value, r.rank, r.item_id, printf('%.9g', r.score)
  FROM (SELECT 1 AS value UNION ALL SELECT 501 UNION ALL SELECT 1001) AS u, recommend(u.value, 12) AS r;
SELECT 'similar', i.value, s.rank, s.item_id, printf('%.9g', s.score)
  FROM generate_series(1, 300, 29) AS i, similar_items(i.value, 8) AS s;
CREATE TABLE holdout AS SELECT user_id, item_id FROM feed WHERE watch_time >= 25 AND user_id % 4 = 0;
SELECT foryou_evaluate('feed', 'holdout', 10);
SELECT json_remove(foryou_refit('feed', '{"mode": "incremental"}'), '$.seconds', '$.threads');
SELECT 'users2', chunk, hex(factors) FROM feed_users;
SELECT 'items2', chunk, hex(factors) FROM feed_items;
