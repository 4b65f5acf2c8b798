-- Error messages as the sqlite3 shell shows them; every statement after an error still runs.
-- (Messages that list every option are checked by tests/tests/*.rs: the option set grows.)
.print -- no foryou table yet
SELECT * FROM recommend(1, 3);
SELECT * FROM similar_items(1, 3);
SELECT foryou_refit();
.print -- CREATE options
CREATE VIRTUAL TABLE feed USING foryou(factors = 0);
CREATE VIRTUAL TABLE feed USING foryou(factors = 2.5);
CREATE VIRTUAL TABLE feed USING foryou(alpha = 0);
CREATE VIRTUAL TABLE feed USING foryou(seed = -1);
CREATE VIRTUAL TABLE feed USING foryou(exclude_watched = maybe);
CREATE VIRTUAL TABLE feed USING foryou(seed = 1, SEED = 2);
SELECT count(*) AS objects_after_failed_creates FROM sqlite_master;
CREATE VIRTUAL TABLE feed USING foryou(factors = 2, iterations = 10, seed = 3, threads = 1);
.print -- refit of an empty table
SELECT foryou_refit('feed');
.print -- bad values: nothing of a failing statement is stored
INSERT INTO feed(user_id, item_id, watch_time, duration) VALUES (NULL, 1, 1, 1);
INSERT INTO feed(user_id, item_id, watch_time, duration) VALUES (x'01', 1, 1, 1);
INSERT INTO feed(user_id, item_id, watch_time, duration) VALUES (1, 'abc', 1, 1);
INSERT INTO feed(user_id, item_id, watch_time, duration) VALUES (1, 1.5, 1, 1);
INSERT INTO feed(user_id, item_id, watch_time, duration) VALUES (1, 2, -3, 10);
INSERT INTO feed(user_id, item_id, watch_time, duration) VALUES (1, 2, 3, 0);
INSERT INTO feed(user_id, item_id, watch_time, duration) VALUES (1, 2, 3, 0.0/0.0);
INSERT INTO feed(user_id, item_id, watch_time, duration) VALUES (1, 2, 3, 9e999);
INSERT INTO feed(user_id, item_id, watch_time, duration) VALUES (1, 2, '1e999', 10);
INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (1, 2, 3, 10, 'soon');
INSERT INTO feed(user_id, item_id, watch_time, duration, ts) VALUES (1, 1, 10, 10, 1), (1, 2, 10, 10, 2), (1, 3, 10, -10, 3);
SELECT count(*) AS events_after_failed_inserts FROM feed;
INSERT INTO feed(rowid, user_id, item_id, watch_time, duration, ts) VALUES
  (1, 1, 1, 10, 10, 1), (2, 1, 2, 10, 10, 2), (3, 2, 1, 10, 10, 3), (4, 2, 2, 10, 10, 4), (5, 2, 3, 10, 10, 5),
  (6, 3, 11, 10, 10, 6), (7, 3, 12, 10, 10, 7), (8, 4, 11, 10, 10, 8), (9, 4, 12, 10, 10, 9), (10, 4, 13, 10, 10, 10),
  (11, '5', '13', '10', '10', '11');
INSERT INTO feed(rowid, user_id, item_id, watch_time, duration, ts) VALUES (5, 9, 9, 9, 9, 9);
UPDATE feed SET duration = 0 WHERE rowid = 1;
SELECT rowid, user_id, item_id, watch_time, duration, ts FROM feed WHERE rowid IN (1, 5, 11);
.print -- popularity before the first refit (distinct viewers, ties by smaller id)
SELECT item_id, round(score, 3), rank FROM recommend(99, 10);
SELECT item_id, round(score, 3), rank FROM recommend(1, 10);
SELECT count(*) AS similar_before_refit FROM similar_items(1, 5);
.print -- recommend / similar_items arguments
SELECT * FROM recommend(NULL, 3);
SELECT * FROM recommend('seven', 3);
SELECT * FROM recommend(1, 0);
SELECT * FROM recommend(1, -1);
SELECT * FROM recommend(1, 10001);
SELECT * FROM recommend(1, NULL);
SELECT * FROM recommend(1, 'three');
SELECT * FROM recommend(1, 2.5);
SELECT * FROM recommend(1, 3, 'nope');
SELECT * FROM recommend(1, 3, 7);
SELECT * FROM recommend(1);
SELECT * FROM similar_items(x'00', 3);
SELECT * FROM similar_items(1, 10001);
SELECT * FROM similar_items(1, 3, 'nope');
.print -- foryou_refit arguments
SELECT foryou_refit(1);
SELECT foryou_refit('nope');
SELECT foryou_refit('feed', 7);
SELECT foryou_refit('feed', '[1]');
SELECT foryou_refit('feed', '{');
SELECT foryou_refit('feed', '{"factors": 0}');
SELECT foryou_refit('feed', '{"iterations": "3"}');
SELECT json_extract(r, '$.model'), json_extract(r, '$.version'), json_extract(r, '$.users'), json_extract(r, '$.items'),
       json_extract(r, '$.events'), json_extract(r, '$.pairs'), json_extract(r, '$.factors'), json_extract(r, '$.threads')
  FROM (SELECT foryou_refit('feed') AS r);
.print -- after the refit: each taste gets its own items
SELECT item_id, rank FROM recommend(1, 1);
SELECT item_id, rank FROM recommend(3, 1);
SELECT item_id, rank FROM recommend(99, 2);
.print -- two tables: the model must be named
CREATE VIRTUAL TABLE clips USING foryou(factors = 2);
SELECT * FROM recommend(1, 3);
SELECT * FROM similar_items(1, 3);
SELECT foryou_refit();
SELECT * FROM recommend(1, 3, 'nope');
SELECT item_id, rank FROM recommend(1, 1, 'feed');
.print -- extreme ids
INSERT INTO clips(user_id, item_id, watch_time, duration, ts) VALUES
  (-9223372036854775808, 9223372036854775807, 1, 1, 1), (9223372036854775807, -9223372036854775808, 1, 1, 1),
  (0, 9223372036854775807, 1, 1, 1);
SELECT item_id, round(score, 3), rank FROM recommend(5, 5, 'clips');
SELECT item_id, rank FROM recommend(-9223372036854775808, 5, 'clips');
.print -- DROP removes every shadow table
DROP TABLE clips;
DROP TABLE feed;
SELECT count(*) AS objects_after_drop FROM sqlite_master;
