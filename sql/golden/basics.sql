-- A tiny catalogue: two tastes (items 1-3 and 11-13), checked end to end.
SELECT foryou_version() GLOB '[0-9]*.[0-9]*.[0-9]*', foryou_version() = '0.1.0'; -- as Cargo.toml has it
CREATE VIRTUAL TABLE feed USING foryou(factors = 4, iterations = 20, regularization = 0.05, seed = 7, threads = 1);
INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES
  (1, 1, 15, 15, 1700000000), (1, 2, 15, 15, 1700000001),
  (2, 1, 15, 15, 1700000002), (2, 2, 15, 15, 1700000003), (2, 3, 15, 15, 1700000004),
  (3, 11, 15, 15, 1700000005), (3, 12, 15, 15, 1700000006),
  (4, 11, 15, 15, 1700000007), (4, 12, 15, 15, 1700000008), (4, 13, 15, 15, 1700000009);
SELECT rowid, user_id, item_id, watch_time, duration, ts FROM feed WHERE user_id = 4;
.print -- before the first refit: popularity
SELECT item_id, score, rank FROM recommend(1, 3);
SELECT json_extract(r, '$.users'), json_extract(r, '$.items'), json_extract(r, '$.events'), json_extract(r, '$.version')
  FROM (SELECT foryou_refit('feed') AS r);
.print -- user 1 gets the item of their own taste
SELECT item_id, rank FROM recommend(1, 1);
SELECT item_id, rank FROM recommend(3, 1);
SELECT item_id, rank FROM similar_items(11, 2, 'feed');
.print -- errors
SELECT * FROM recommend(NULL, 3);
SELECT * FROM recommend(1, 0);
SELECT * FROM recommend(1, 10001);
SELECT * FROM recommend(1, 3, 'nope');
INSERT INTO feed(user_id, item_id, watch_time, duration) VALUES (1, 2, 3, 0);
INSERT INTO feed(user_id, item_id, watch_time, duration) VALUES (1, 2, -3, 10);
CREATE VIRTUAL TABLE other USING foryou(colour = 'red');
SELECT count(*) FROM feed;
DROP TABLE feed;
SELECT count(*) FROM sqlite_master;
